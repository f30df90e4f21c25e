"""``visitmail bench …`` and ``python -m bench.run``: parse the options, run the benchmark,
print the table, write the JSON.

Exit status: 0 when no run failed (peers shown as n/a do not fail the benchmark), 1 when
some run lost or duplicated messages or crashed or no sink could start, 2 on bad options.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.peers.registry import PEERS, make_peers
from bench.run import (
    BASELINE_PEER,
    DEFAULT_PEERS,
    BenchConfig,
    BenchReport,
    PeerReport,
    run_bench,
)
from bench.sink import SinkUnavailable


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="visitmail bench",
        description="Send the same messages through each peer to a local SMTP sink, side by "
        "side in one run, and report times and the ratio to Nodemailer.",
    )
    parser.add_argument("--messages", type=_positive, default=2000, metavar="N")
    parser.add_argument("--connections", type=_positive, default=4, metavar="K")
    parser.add_argument("--repeat", type=_positive, default=3, metavar="R")
    parser.add_argument(
        "--peers",
        type=_peer_list,
        default=DEFAULT_PEERS,
        metavar="A,B,C",
        help=f"comma-separated, from: {', '.join(PEERS)} (default: all)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results here")
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="for the visitmail peer: a temporary SQLite file, or a throwaway PostgreSQL "
        "database (VISITMAIL_BENCH_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/test)",
    )
    parser.add_argument(
        "--sink",
        choices=("auto", "smtp-sink", "aiosmtpd"),
        default="auto",
        help="auto: Postfix's smtp-sink, aiosmtpd only if smtp-sink is missing",
    )
    parser.add_argument(
        "--no-verify-ids",
        dest="verify_message_ids",
        action="store_false",
        help="only count messages at the sink, do not check each Message-ID arrived once",
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, metavar="S", help="per run (default 600)"
    )
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


def main(argv: list[str]) -> int:
    """Run the benchmark with command-line ``argv``; return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or bad options
        return e.code if isinstance(e.code, int) else 2
    config = BenchConfig(
        messages=args.messages,
        connections=args.connections,
        repeat=args.repeat,
        peers=args.peers,
        database=args.database,
        sink=args.sink,
        verify_message_ids=args.verify_message_ids,
        run_timeout=args.timeout,
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
