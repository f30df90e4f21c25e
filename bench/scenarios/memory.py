"""``memory``: a worker's memory with a big backlog.

Per database (PostgreSQL first, then SQLite; a smoke run only the first): a fresh
database, one organization whose SMTP server is smtp-sink (``max_connections`` = 8), and
100,000 queued messages (~5.4 KB, one recipient each) put into the outbox with multi-row
INSERTs (setup, untimed; smoke: 500). Then one ``visitmail worker`` process with the
operator defaults (concurrency 20, claims of 100) drains it while its resident memory is
sampled from ``/proc/PID/status`` (``VmRSS`` every 100 ms, and the kernel's own
high-water mark ``VmHWM`` once everything is sent). Reported: the peak RSS in MB (target
<= 250 MB) and, for reference, the drain rate (msgs/s from starting the process, start-up
included).

A drain is cut short after ``max_seconds`` (full 1200): the figures then cover the part
drained, with ``messages - sent`` still queued, and a note says so; nothing lost, not failed.

Overrides (``--set memory.NAME=VALUE``): ``messages``, ``connections`` (max_connections),
``max_seconds``.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.databases import DatabaseKind, fresh_database
from bench.peers.base import PeerUnavailable
from bench.peers.visitmail_peer import new_master_keys
from bench.scenarios.base import (
    Measurement,
    Progress,
    ScenarioOptions,
    ScenarioResult,
    Target,
    judge,
)
from bench.sink import Sink, start_sink
from bench.worker_process import (
    SentCounter,
    WorkerProcess,
    bulk_insert,
    prepare_outbox,
    start_worker,
    visitmail_binary,
)

GOAL_MB = 250.0
SAMPLE_SECONDS = 0.1
STALL_SECONDS = 60.0
REPORT_SECONDS = 15.0


@dataclass
class _Outcome:
    peak_kb: int = 0
    hwm_kb: int = 0
    seconds: float | None = None
    sent: int = 0
    error: str | None = None
    cut_short: bool = False  # the time limit ended the drain first


async def _watch(
    worker: WorkerProcess, sink: Sink, counter: SentCounter, n: int, limit: float, say: Progress
) -> _Outcome:
    """Sample the worker's RSS until the sink has all ``n`` and the database says sent, or
    ``limit`` seconds passed; a progress line every ``REPORT_SECONDS``."""
    outcome = _Outcome()
    started = time.perf_counter()
    received, moved = 0, time.monotonic()
    reported = time.monotonic()
    while True:
        if time.monotonic() - reported >= REPORT_SECONDS:
            reported = time.monotonic()
            peak_mb = outcome.peak_kb / 1024
            say(f"{received:,} of {n:,} received by the sink, peak RSS so far {peak_mb:.0f} MB")
        memory = worker.memory_kb()
        if memory is not None:
            outcome.peak_kb = max(outcome.peak_kb, memory[0])
            outcome.hwm_kb = max(outcome.hwm_kb, memory[1])
        if worker.process.returncode is not None:
            outcome.error = f"the worker exited: {worker.tail()}"
            return outcome
        now_received = sink.received()
        if now_received != received:
            received, moved = now_received, time.monotonic()
        if received >= n:
            outcome.sent = await counter.count()
            if outcome.sent >= n:
                outcome.seconds = time.perf_counter() - started
                memory = worker.memory_kb()
                if memory is not None:
                    outcome.peak_kb = max(outcome.peak_kb, memory[0])
                    outcome.hwm_kb = max(outcome.hwm_kb, memory[1])
                return outcome
        if time.perf_counter() - started > limit:
            outcome.sent = await counter.count()
            outcome.seconds = time.perf_counter() - started
            outcome.cut_short = True
            return outcome
        if time.monotonic() - moved > STALL_SECONDS:
            outcome.sent = await counter.count()
            outcome.error = f"stalled: {outcome.sent} of {n} sent"
            return outcome
        await asyncio.sleep(SAMPLE_SECONDS)


async def _run_on(
    kind: DatabaseKind, n: int, connections: int, limit: float, progress: Progress
) -> _Outcome:
    sink = await start_sink()
    try:
        async with fresh_database(kind) as url:
            with tempfile.TemporaryDirectory(prefix="visitmail-bench-memory-") as tmp:
                runtime, outbox = await prepare_outbox(
                    url, Path(tmp), new_master_keys(), connections, sink.host, sink.port
                )
                try:
                    progress(f"{kind}: inserting {n} queued messages")
                    await bulk_insert(runtime, outbox.organization_id, n)
                finally:
                    await runtime.close()
                progress(f"{kind}: draining with one `visitmail worker`")
                worker = await start_worker(outbox, None)
                try:
                    async with SentCounter(url) as counter:
                        outcome = await _watch(
                            worker,
                            sink,
                            counter,
                            n,
                            limit,
                            lambda line: progress(f"{kind}: {line}"),
                        )
                finally:
                    await worker.stop()
        received = await sink.wait_for_count(n, 0.2 if outcome.cut_short else 5)
    finally:
        await sink.close()
    if outcome.error is None and not outcome.cut_short and received != n:
        outcome.error = f"sink received {received} of {n} messages"
    return outcome


@dataclass(frozen=True)
class MemoryScenario:
    name: str = "memory"
    description: str = "peak RSS of one `visitmail worker` draining a 100,000-message backlog"

    async def run(self, options: ScenarioOptions, progress: Progress) -> ScenarioResult:
        n = options.number("messages", smoke=500, full=100_000)
        connections = options.number("connections", smoke=8, full=8)
        limit = options.number("max_seconds", smoke=300, full=1200)
        kinds = [k for k in ("postgresql", "sqlite") if k in options.databases]
        if options.size == "smoke":
            kinds = kinds[:1]  # a worker process starts slowly; one proves the scenario
        params: dict[str, Any] = {
            "messages": n,
            "max_connections": connections,
            "worker": "visitmail worker (defaults: concurrency 20, claims of 100)",
            "databases": kinds,
            "sample_interval_ms": SAMPLE_SECONDS * 1000,
            "max_seconds": limit,
        }
        try:
            visitmail_binary()
        except PeerUnavailable as e:
            return ScenarioResult(self.name, "n/a", params, reason=e.reason)
        measurements: list[Measurement] = []
        targets: list[Target] = []
        notes: list[str] = []
        failed = False
        for kind in kinds:
            outcome = await _run_on(kind, n, connections, limit, progress)
            peak_mb = max(outcome.peak_kb, outcome.hwm_kb) / 1024 if outcome.hwm_kb else None
            if outcome.error:
                failed = True
                notes.append(f"{kind}: {outcome.error}")
                peak_mb = None
            else:
                progress(f"{kind}: peak RSS {peak_mb:.0f} MB")
            drained = outcome.sent if outcome.cut_short else n
            rate = drained / outcome.seconds if outcome.seconds and not outcome.error else None
            if outcome.cut_short:
                notes.append(
                    f"{kind}: stopped after {limit} s with {outcome.sent:,} of {n:,} sent (at "
                    f"least {n - outcome.sent:,} still queued); peak RSS and drain cover that part"
                )
            measurements.append(Measurement("visitmail", "peak_rss", peak_mb, "MB", "lower", kind))
            measurements.append(
                Measurement(
                    "visitmail",
                    "drain",
                    rate,
                    "msgs/s",
                    "higher",
                    kind,
                    note="from starting the process (start-up included)",
                )
            )
            targets.append(
                judge(
                    f"memory: worker peak RSS <= {GOAL_MB:g} MB with {n} queued ({kind})",
                    peak_mb,
                    GOAL_MB,
                    "lower",
                    options.size,
                )
            )
        notes.insert(0, "peak RSS = max(VmRSS sampled every 100 ms, VmHWM at the end)")
        return ScenarioResult(
            self.name,
            "failed" if failed else "ok",
            params,
            measurements=measurements,
            targets=targets,
            notes=notes,
        )


SCENARIO = MemoryScenario()
