"""The runner: every peer sends the same N messages to a fresh sink, side by side in one run.

Repeats are interleaved (repeat 1 of every peer, then repeat 2, ...), and the peers' order
rotates from one repeat to the next, so machine noise and warm-up hit all peers alike. A
run counts only if the sink received exactly N messages (and, when Message-IDs are
recorded, each of them exactly once): a run that lost or duplicated messages is reported
as failed, never as fast. A peer that cannot run here (``PeerUnavailable``) is reported as
``n/a`` with its reason, and the others go on.

The time of a run is the peer's own ``PeerResult.seconds``: from the start of sending until
the last message was accepted (see ``bench.peers.base``). The report gives, per peer, the
median and minimum over the successful repeats, messages per second at the median, and the
ratio to Nodemailer's throughput (2.0 = twice as many messages per second as Nodemailer).

``python -m bench.run --help`` lists the options; ``bench.cli.main`` is the entry point.
"""

from __future__ import annotations

import asyncio
import gc
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bench.databases import DatabaseKind, fresh_database
from bench.delay_proxy import start_delay_proxy
from bench.peers.base import Peer, PeerResult, PeerUnavailable, RunContext
from bench.sink import SinkKind, find_smtp_sink, start_sink
from bench.workload import Workload, build_messages

BASELINE_PEER = "nodemailer"
DEFAULT_PEERS = ("nodemailer", "nodemailer-default", "aiosmtplib-raw", "visitmail")
PeerStatus = Literal["ok", "failed", "n/a"]


@dataclass(frozen=True)
class BenchConfig:
    """The parameters of one benchmark; they go into the JSON report as ``params``."""

    messages: int = 2000
    connections: int = 4
    repeat: int = 3
    peers: tuple[str, ...] = DEFAULT_PEERS
    database: DatabaseKind = "sqlite"
    sink: SinkKind = "auto"
    verify_message_ids: bool = True
    run_timeout: float = 600.0
    settle_timeout: float = 5.0
    # When set, every peer sends through a ``bench.delay_proxy`` in front of the sink that
    # delays each direction by this many seconds (the ``relay`` scenario).
    relay_delay: float | None = None


@dataclass
class RunRecord:
    """One run of one peer. ``ok`` only if the peer finished, reported N accepted, and the
    sink received exactly N (each Message-ID once, when checked)."""

    repeat: int
    ok: bool
    seconds: float | None
    wall_seconds: float
    sent: int | None
    received: int
    error: str | None = None
    peak_connections: int | None = None  # seen by the delaying proxy, when there is one


@dataclass
class PeerReport:
    """A peer's results over all repeats."""

    peer: str
    status: PeerStatus
    messages: int
    reason: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    runs: list[RunRecord] = field(default_factory=list)
    ratio_vs_nodemailer: float | None = None

    @property
    def ok_seconds(self) -> list[float]:
        return [r.seconds for r in self.runs if r.ok and r.seconds is not None]

    @property
    def median_seconds(self) -> float | None:
        times = self.ok_seconds
        return statistics.median(times) if times else None

    @property
    def min_seconds(self) -> float | None:
        times = self.ok_seconds
        return min(times) if times else None

    @property
    def msgs_per_second(self) -> float | None:
        median = self.median_seconds
        return self.messages / median if median else None

    def to_json(self) -> dict[str, Any]:
        return {
            "peer": self.peer,
            "status": self.status,
            "reason": self.reason,
            "messages": self.messages,
            "versions": self.versions,
            "median_seconds": self.median_seconds,
            "min_seconds": self.min_seconds,
            "msgs_per_second": self.msgs_per_second,
            "ratio_vs_nodemailer": self.ratio_vs_nodemailer,
            "runs": [
                {
                    "repeat": r.repeat,
                    "ok": r.ok,
                    "seconds": r.seconds,
                    "wall_seconds": r.wall_seconds,
                    "sent": r.sent,
                    "received": r.received,
                    "error": r.error,
                    "peak_connections": r.peak_connections,
                }
                for r in self.runs
            ],
        }


@dataclass
class BenchReport:
    """The whole benchmark: machine facts, parameters, one ``PeerReport`` per peer."""

    machine: dict[str, Any]
    params: dict[str, Any]
    results: list[PeerReport]

    def result(self, peer: str) -> PeerReport:
        return next(r for r in self.results if r.peer == peer)

    @property
    def failed(self) -> bool:
        return any(r.status == "failed" for r in self.results)

    def to_json(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "params": self.params,
            "results": [r.to_json() for r in self.results],
        }


def _node_version() -> str | None:
    node = shutil.which("node")
    if node is None:
        return None
    try:
        done = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def machine_facts() -> dict[str, Any]:
    """What the numbers depend on: CPUs, Python, Node.js, OS."""
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "node": _node_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
    }


def _describe(error: BaseException) -> str:
    if isinstance(error, BaseExceptionGroup) and error.exceptions:
        return _describe(error.exceptions[0])
    if isinstance(error, TimeoutError):
        return "timed out"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _verify(
    result: PeerResult, expected: int, received: int, ids: list[str] | None, workload: Workload
) -> str | None:
    """Why this run does not count, or None if it does."""
    if result.sent != expected:
        first = result.details.get("first_error")
        suffix = f" ({first})" if first else ""
        return f"peer reports {result.sent} of {expected} accepted{suffix}"
    if received != expected:
        return f"sink received {received} of {expected} messages"
    if ids is not None:
        wanted = result.message_ids if result.message_ids is not None else workload.message_ids
        duplicates = len(ids) - len(set(ids))
        if duplicates:
            return f"sink received {duplicates} duplicate Message-ID(s)"
        if set(ids) != wanted:
            missing = len(wanted - set(ids))
            return f"sink's Message-IDs differ from those sent ({missing} missing)"
    return None


@asynccontextmanager
async def _database(peer: Peer, kind: DatabaseKind) -> AsyncIterator[str | None]:
    """A fresh database for ``peer``: of its own kind when it is pinned to one (a
    ``database`` attribute, see ``bench.peers.registry.OnDatabase``), else ``kind``."""
    if not peer.needs_database:
        yield None
        return
    pinned: DatabaseKind | None = getattr(peer, "database", None)
    async with fresh_database(pinned or kind) as url:
        yield url


@asynccontextmanager
async def _relay(
    config: BenchConfig, host: str, port: int, seen: dict[str, Any]
) -> AsyncIterator[tuple[str, int]]:
    """Where peers connect: the sink itself, or a delaying proxy in front of it (whose
    statistics are put into ``seen`` on exit)."""
    if config.relay_delay is None:
        yield host, port
        return
    proxy = await start_delay_proxy(host, port, config.relay_delay)
    try:
        yield proxy.host, proxy.port
    finally:
        seen.update(await proxy.stop())


async def _run_once(peer: Peer, repeat: int, workload: Workload, config: BenchConfig) -> RunRecord:
    """One run of one peer against a fresh sink (and database). Raises ``PeerUnavailable``."""
    sink = await start_sink(config.sink, record_message_ids=config.verify_message_ids)
    result: PeerResult | None = None
    error: str | None = None
    wall = 0.0
    relay_stats: dict[str, Any] = {}
    try:
        async with (
            _database(peer, config.database) as database_url,
            _relay(config, sink.host, sink.port, relay_stats) as (host, port),
        ):
            ctx = RunContext(workload, config.connections, host, port, database_url)
            gc.collect()
            started = time.perf_counter()
            try:
                result = await asyncio.wait_for(peer.run(ctx), config.run_timeout)
            except PeerUnavailable:
                raise
            except Exception as e:
                error = _describe(e)
            wall = time.perf_counter() - started
        received = await sink.wait_for_count(
            workload.n, config.settle_timeout if result is not None else 0.2
        )
        await sink.stop()
        ids = sink.message_ids() if config.verify_message_ids else None
    finally:
        await sink.close()
    if result is not None:
        error = _verify(result, workload.n, received, ids, workload)
    return RunRecord(
        repeat=repeat,
        ok=error is None,
        seconds=result.seconds if result is not None else None,
        wall_seconds=wall,
        sent=result.sent if result is not None else None,
        received=received,
        error=error,
        peak_connections=relay_stats.get("peak_open"),
    )


def _rotated(peers: Sequence[Peer], by: int) -> list[Peer]:
    if not peers:
        return []
    k = by % len(peers)
    return [*peers[k:], *peers[:k]]


async def run_bench(
    config: BenchConfig,
    peers: Sequence[Peer],
    *,
    progress: Callable[[str], None] | None = None,
) -> BenchReport:
    """Prepare every peer, run the interleaved repeats, and return the report."""
    say = progress or (lambda _line: None)
    workdir = Path(tempfile.mkdtemp(prefix="visitmail-bench-"))
    try:
        workload = Workload(build_messages(config.messages), workdir)
        reports: dict[str, PeerReport] = {}
        active: list[Peer] = []
        for peer in peers:
            report = PeerReport(peer.name, "ok", workload.n)
            reports[peer.name] = report
            try:
                report.versions = dict(await peer.prepare(workload))
                active.append(peer)
            except PeerUnavailable as e:
                report.status, report.reason = "n/a", e.reason
                say(f"{peer.name}: n/a ({e.reason})")
        for repeat in range(1, config.repeat + 1):
            for peer in _rotated(list(active), repeat - 1):
                report = reports[peer.name]
                try:
                    record = await _run_once(peer, repeat, workload, config)
                except PeerUnavailable as e:
                    report.status, report.reason = "n/a", e.reason
                    report.runs.clear()
                    active.remove(peer)
                    say(f"{peer.name}: n/a ({e.reason})")
                    continue
                report.runs.append(record)
                if record.ok:
                    say(f"{peer.name} #{repeat}: {record.seconds:.3f} s")
                else:
                    report.status = "failed"
                    report.reason = report.reason or record.error
                    say(f"{peer.name} #{repeat}: FAILED ({record.error})")
        _add_ratios(list(reports.values()))
        return BenchReport(
            machine=machine_facts(),
            params=_params(config, workload),
            results=[reports[p.name] for p in peers],
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _add_ratios(reports: list[PeerReport]) -> None:
    baseline = next((r for r in reports if r.peer == BASELINE_PEER and r.status == "ok"), None)
    base_median = baseline.median_seconds if baseline else None
    for report in reports:
        median = report.median_seconds
        if base_median and median and report.status == "ok":
            report.ratio_vs_nodemailer = base_median / median


def _params(config: BenchConfig, workload: Workload) -> dict[str, Any]:
    sink = config.sink
    if sink == "auto":
        sink = "smtp-sink" if find_smtp_sink() else "aiosmtpd"
    return {
        "messages": config.messages,
        "connections": config.connections,
        "repeat": config.repeat,
        "peers": list(config.peers),
        "database": config.database,
        "sink": sink,
        "verify_message_ids": config.verify_message_ids,
        "mean_message_bytes": workload.mean_message_bytes,
        "recipients_per_message": 1,
        "relay_delay_ms": None if config.relay_delay is None else config.relay_delay * 1000,
    }


if __name__ == "__main__":
    from bench.cli import command_line

    raise SystemExit(command_line(sys.argv[1:]))
