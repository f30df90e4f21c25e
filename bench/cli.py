"""``visitmail bench …`` and ``python -m bench.run``: parse the options, run the scenarios
(progress on stderr), print a table per scenario and the targets, write the JSON and the
chart.

``visitmail bench`` alone runs every scenario at full size on both databases (``make
bench`` adds ``--json`` and ``--chart``). The original delivery options (``--messages
--connections --peers --database --sink --no-verify-ids --timeout``) used without any
suite option run the original delivery benchmark with its own table and JSON, as before;
with suite options they become ``delivery.*`` overrides.

Exit status: 0 when no run failed (peers and scenarios shown as n/a do not fail the
benchmark), 1 when some run lost or duplicated messages or crashed or no sink could start,
2 on bad options.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.chart import ChartUnavailable, draw_chart
from bench.databases import DatabaseKind
from bench.peers.registry import PEERS, make_peers
from bench.report import scenario_notes, scenario_table, targets_table
from bench.run import (
    BASELINE_PEER,
    DEFAULT_PEERS,
    BenchConfig,
    BenchReport,
    PeerReport,
    run_bench,
)
from bench.scenarios.base import ScenarioOptions, Size
from bench.scenarios.registry import ORDER
from bench.sink import SinkUnavailable
from bench.suite import SuiteReport, parse_overrides, run_suite, targets_by_state


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def _peer_list(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in PEERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown peer(s) {', '.join(unknown) or '(none)'}; known: {', '.join(PEERS)}"
        )
    return names


LEGACY_OPTIONS = (
    "messages",
    "connections",
    "peers",
    "database",
    "sink",
    "verify_message_ids",
    "timeout",
)
SUITE_OPTIONS = ("scenario", "size", "databases", "overrides", "chart")


def _scenario_list(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if names == ("all",):
        return ORDER
    unknown = [n for n in names if n not in ORDER]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown scenario(s) {', '.join(unknown) or '(none)'}; known: {', '.join(ORDER)}"
        )
    return names


def _database_list(text: str) -> tuple[DatabaseKind, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in ("sqlite", "postgresql")]
    if unknown or not names:
        raise argparse.ArgumentTypeError("databases: sqlite, postgresql or both (a,b)")
    return names  # type: ignore[return-value]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="visitmail bench",
        description="The benchmark suite of issue 9: each scenario with its peers side by side "
        "in one run, a table per scenario, the targets, JSON and a chart. The delivery-only "
        "options (--messages, --connections, --peers, --database, --sink, --no-verify-ids, "
        "--timeout) used alone run the original delivery benchmark, as before.",
    )
    suite = parser.add_argument_group("suite")
    suite.add_argument(
        "--scenario",
        type=_scenario_list,
        metavar="A,B",
        help=f"comma-separated, from: {', '.join(ORDER)} (default: all)",
    )
    suite.add_argument(
        "--size",
        choices=("smoke", "full"),
        help="smoke: tiny numbers, targets not judged; full (default): the real benchmark",
    )
    suite.add_argument(
        "--databases",
        type=_database_list,
        metavar="A,B",
        help="sqlite,postgresql (default: both)",
    )
    suite.add_argument(
        "--set",
        dest="overrides",
        action="append",
        metavar="NAME=VALUE",
        help="a scenario parameter, e.g. messages=500 (every scenario) or relay.delay_ms=20",
    )
    suite.add_argument("--chart", type=Path, metavar="PATH", help="draw the chart (PNG) here")
    parser.add_argument(
        "--repeat", type=_positive, metavar="R", help="repeats (default: 3; smoke: 1)"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results here")
    delivery = parser.add_argument_group("delivery only (the original benchmark)")
    delivery.add_argument("--messages", type=_positive, metavar="N", help="default 2000")
    delivery.add_argument("--connections", type=_positive, metavar="K", help="default 4")
    delivery.add_argument(
        "--peers",
        type=_peer_list,
        metavar="A,B,C",
        help=f"comma-separated, from: {', '.join(PEERS)} (default: all)",
    )
    delivery.add_argument(
        "--database",
        choices=("sqlite", "postgresql"),
        help="for the visitmail peer (default sqlite): a temporary SQLite file, or a throwaway "
        "PostgreSQL database (VISITMAIL_BENCH_DATABASE_URL, default "
        "postgresql://postgres@127.0.0.1:5432/test)",
    )
    delivery.add_argument(
        "--sink",
        choices=("auto", "smtp-sink", "aiosmtpd"),
        help="auto (default): Postfix's smtp-sink, aiosmtpd only if smtp-sink is missing",
    )
    delivery.add_argument(
        "--no-verify-ids",
        dest="verify_message_ids",
        action="store_const",
        const=False,
        help="only count messages at the sink, do not check each Message-ID arrived once",
    )
    delivery.add_argument("--timeout", type=float, metavar="S", help="per run (default 600)")
    return parser


def _seconds(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "—"


def _status(r: PeerReport) -> str:
    if r.status == "failed":
        return f"[red]FAILED {len(r.runs) - len(r.ok_seconds)}/{len(r.runs)}[/red]"
    return r.status


def render_notes(report: BenchReport) -> list[str]:
    """One line per peer that is n/a or failed, with the reason."""
    return [f"{r.peer}: {r.status}: {r.reason}" for r in report.results if r.status != "ok"]


def render_table(report: BenchReport) -> Table:
    """peer, status, messages, median s, min s, msgs/s, ratio to Nodemailer."""
    params = report.params
    table = Table(
        title=f"visitmail bench: {params['messages']} messages (~{params['mean_message_bytes']} B, "
        f"1 recipient), {params['connections']} connections, repeats: {params['repeat']}, "
        f"sink {params['sink']}",
        caption=f"ratio = msgs/s relative to {BASELINE_PEER} (higher is faster); "
        "median and min over successful repeats",
    )
    table.add_column("peer", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("messages", justify="right")
    table.add_column("median s", justify="right")
    table.add_column("min s", justify="right")
    table.add_column("msgs/s", justify="right")
    table.add_column("ratio", justify="right")
    for r in report.results:
        mps = r.msgs_per_second
        table.add_row(
            r.peer,
            _status(r),
            str(r.messages),
            _seconds(r.median_seconds),
            _seconds(r.min_seconds),
            f"{mps:.0f}" if mps else "—",
            f"{r.ratio_vs_nodemailer:.2f}" if r.ratio_vs_nodemailer else "—",
        )
    return table


def _given(args: argparse.Namespace, names: tuple[str, ...]) -> list[str]:
    return [n for n in names if getattr(args, n) is not None]


def _legacy(args: argparse.Namespace) -> int:
    """The original delivery benchmark: its table and its JSON, as before."""
    config = BenchConfig(
        messages=args.messages or 2000,
        connections=args.connections or 4,
        repeat=args.repeat or 3,
        peers=args.peers or DEFAULT_PEERS,
        database=args.database or "sqlite",
        sink=args.sink or "auto",
        verify_message_ids=args.verify_message_ids is not False,
        run_timeout=args.timeout or 600.0,
    )
    console = Console()
    err = Console(stderr=True)
    try:
        report = asyncio.run(
            run_bench(config, make_peers(list(config.peers)), progress=lambda line: err.print(line))
        )
    except SinkUnavailable as e:
        err.print(f"error: no SMTP sink: {e}", markup=False)
        return 1
    console.print(render_table(report))
    for line in render_notes(report):
        console.print(line, markup=False, highlight=False)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
        console.print(f"results written to {args.json}")
    return 1 if report.failed else 0


def suite_options(args: argparse.Namespace) -> tuple[tuple[str, ...], ScenarioOptions]:
    """The scenarios and their options from the command line; the delivery-only options,
    given with suite options, become ``delivery.*`` overrides. Raises ``ValueError``."""
    size: Size = "smoke" if args.size == "smoke" else "full"
    overrides: dict[str, str] = {}
    legacy = {
        "messages": args.messages,
        "connections": args.connections,
        "peers": ",".join(args.peers) if args.peers else None,
        "sink": args.sink,
        "verify_ids": "0" if args.verify_message_ids is False else None,
        "timeout": args.timeout,
    }
    for name, value in legacy.items():
        if value is not None:
            overrides[f"delivery.{name}"] = str(value)
    overrides |= parse_overrides(args.overrides or [])
    databases: tuple[DatabaseKind, ...] = args.databases or (
        (args.database,) if args.database else ("sqlite", "postgresql")
    )
    options = ScenarioOptions(
        size=size,
        databases=databases,
        repeat=args.repeat or (1 if size == "smoke" else 3),
        overrides=overrides,
    )
    return args.scenario or ORDER, options


def _suite(args: argparse.Namespace) -> int:
    console = Console()
    err = Console(stderr=True)
    try:
        names, options = suite_options(args)
    except ValueError as e:
        err.print(f"error: {e}", markup=False)
        return 2

    def save(report: SuiteReport) -> None:
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")

    report = asyncio.run(
        run_suite(
            names,
            options,
            lambda line: err.print(line, markup=False, highlight=False),
            after_each=save,  # a long run that is interrupted keeps what it measured
        )
    )
    for result in report.results:
        console.print(scenario_table(result))
        for line in scenario_notes(result):
            console.print(line, markup=False, highlight=False)
        console.print()
    console.print(targets_table(report))
    counts = targets_by_state(report)
    console.print(", ".join(f"{n} {state}" for state, n in counts.items()) + " target(s)")
    if args.json is not None:
        save(report)
        console.print(f"results written to {args.json}")
    if args.chart is not None:
        facts = report.machine
        title = (
            f"visitmail bench ({options.size}): {facts['cpu_count']} CPUs, Python "
            f"{facts['python']}, Node {facts['node']}"
        )
        try:
            draw_chart(report.results, args.chart, title=title)
            console.print(f"chart drawn to {args.chart}")
        except ChartUnavailable as e:
            err.print(f"no chart: {e}", markup=False)
    return 1 if report.failed else 0


def quiet_visitmail_logs() -> None:
    """For the command-line entry points (not ``main``, which tests call in-process):
    visitmail's in-process peers log to stderr, warnings and worse only; unconfigured,
    structlog would print every line to stdout, between the tables."""
    try:
        from visitmail.logs import configure_logging
    except ImportError:
        return
    configure_logging("WARNING")


def command_line(argv: list[str]) -> int:
    """``python -m bench`` / ``python -m bench.run``: ``main`` with quiet visitmail logs."""
    quiet_visitmail_logs()
    return main(argv)


def main(argv: list[str]) -> int:
    """Run the benchmark with command-line ``argv``; return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or bad options
        return e.code if isinstance(e.code, int) else 2
    if _given(args, LEGACY_OPTIONS) and not _given(args, SUITE_OPTIONS):
        return _legacy(args)
    return _suite(args)
