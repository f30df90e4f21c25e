"""``scale``: does a second ``visitmail worker`` process add throughput? (PostgreSQL only.)

One run: a fresh PostgreSQL database, one organization whose SMTP server is smtp-sink
behind the delaying relay (``bench.delay_proxy``, 10 ms each direction, so the CPU is not
the limit), ``max_connections`` = 8. The worker processes (``.venv/bin/visitmail worker
--concurrency 8``, real subprocesses) are started and waited for until each LISTENs; then
the backlog (3,000 messages, enqueued through ``visitmail.services.outbox.enqueue`` in
*one* transaction: setup, untimed) is committed, and the clock runs from that commit until
every message is ``sent`` in the database (polled every 20 ms once the sink has them
all). The sink must have
received each Message-ID exactly once, or the run fails.

Two variants, interleaved over the repeats: 1 process and 2 processes, each on a fresh
backlog. Reported: msgs/s of each (median), and the ratio 2-vs-1 (target >= 1.6).

What the ratio means: ``max_connections`` is the same (8) in both runs, but visitmail
enforces it *per worker process* (each process keeps its own pool per organization), so two
processes may hold up to 16 connections to the relay; the relay reports how many it saw.
With a 20 ms round trip those connections mostly wait, so a ratio near 2 says the second
process's connections are used as well as the first's, and a ratio near 1 says something
outside the SMTP conversations (claims, settlement, a lock) serializes the two processes.

Overrides (``--set scale.NAME=VALUE``): ``messages``, ``connections`` (max_connections and
--concurrency), ``delay_ms``.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.databases import fresh_database
from bench.delay_proxy import start_delay_proxy
from bench.peers.base import PeerUnavailable
from bench.peers.visitmail_peer import enqueue_all, new_master_keys
from bench.scenarios.base import (
    Measurement,
    Progress,
    ScenarioOptions,
    ScenarioResult,
    judge,
)
from bench.sink import Sink, start_sink
from bench.worker_process import (
    SentCounter,
    WorkerProcess,
    prepare_outbox,
    start_worker,
    visitmail_binary,
)
from bench.workload import build_messages

GOAL = 1.6
STALL_SECONDS = 60.0
POLL_SECONDS = 0.02
PROCESSES = (1, 2)


@dataclass
class _Run:
    processes: int
    seconds: float | None
    sent: int
    received: int
    peak_connections: int | None
    error: str | None = None


@dataclass
class _Variant:
    processes: int
    runs: list[_Run] = field(default_factory=list)

    def seconds(self) -> list[float]:
        return [r.seconds for r in self.runs if r.error is None and r.seconds]


async def _wait_listening(counter: SentCounter, workers: list[WorkerProcess]) -> None:
    for worker in workers:
        await worker.wait_ready()
    deadline = time.monotonic() + 30
    # LISTEN shows only in pg_stat_activity: polling it is the only way to wait.
    while await counter.listeners() < len(workers) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)


async def _drain(counter: SentCounter, sink: Sink, n: int, workers: list[WorkerProcess]) -> int:
    """Wait until ``n`` are sent in the database, a worker died, or nothing moved for
    ``STALL_SECONDS``; return how many are sent. The sink's counter (a file's tail) is
    watched first, the database polled only once the sink has them all, so watching
    costs the workers next to nothing."""
    sent, received, moved = 0, 0, time.monotonic()
    while sent < n:
        await asyncio.sleep(POLL_SECONDS)
        now_received = sink.received()
        now_sent = await counter.count() if now_received >= n else sent
        if (now_sent, now_received) != (sent, received):
            sent, received, moved = now_sent, now_received, time.monotonic()
        if time.monotonic() - moved > STALL_SECONDS:
            return await counter.count()
        if any(w.process.returncode is not None for w in workers):
            return await counter.count()
    return sent


async def _run_once(
    processes: int, n: int, connections: int, delay: float, progress: Progress
) -> _Run:
    sink = await start_sink(record_message_ids=True)
    proxy_stats: dict[str, Any] = {}
    seconds: float | None = None
    sent = 0
    error: str | None = None
    try:
        proxy = await start_delay_proxy(sink.host, sink.port, delay)
        try:
            async with fresh_database("postgresql") as url:
                with tempfile.TemporaryDirectory(prefix="visitmail-bench-scale-") as tmp:
                    runtime, outbox = await prepare_outbox(
                        url, Path(tmp), new_master_keys(), connections, proxy.host, proxy.port
                    )
                    workers: list[WorkerProcess] = []
                    try:
                        messages = build_messages(n)
                        async with SentCounter(url) as counter:
                            for i in range(processes):
                                workers.append(await start_worker(outbox, connections, i))
                            await _wait_listening(counter, workers)
                            # One transaction: the whole backlog appears at once.
                            await enqueue_all(
                                runtime, outbox.organization_id, messages, batch=n or 1
                            )
                            started = time.perf_counter()
                            sent = await _drain(counter, sink, n, workers)
                            seconds = time.perf_counter() - started
                    finally:
                        await runtime.close()
                        codes = [await w.stop() for w in workers]
                        dead = [w for w, code in zip(workers, codes, strict=True) if code]
                        if dead and sent < n:
                            error = f"a worker exited: {dead[0].tail()}"
        finally:
            proxy_stats = await proxy.stop()
        received = await sink.wait_for_count(n, 5)
        await sink.stop()
        ids = sink.message_ids()
    finally:
        await sink.close()
    if error is None:
        if sent != n:
            error = f"{sent} of {n} messages sent in the database"
        elif received != n:
            error = f"sink received {received} of {n} messages"
        elif len(set(ids)) != len(ids):
            error = f"sink received {len(ids) - len(set(ids))} duplicate Message-ID(s)"
    run = _Run(processes, seconds, sent, received, proxy_stats.get("peak_open"), error)
    if error is None and seconds:
        progress(f"{processes} worker process(es): {n / seconds:.0f} msgs/s ({seconds:.2f} s)")
    else:
        progress(f"{processes} worker process(es): FAILED ({error})")
    return run


@dataclass(frozen=True)
class ScaleScenario:
    name: str = "scale"
    description: str = "a backlog drained by 1 vs 2 `visitmail worker` processes (PostgreSQL)"

    async def run(self, options: ScenarioOptions, progress: Progress) -> ScenarioResult:
        n = options.number("messages", smoke=60, full=3000)
        connections = options.number("connections", smoke=8, full=8)
        delay_ms = float(options.overrides.get("delay_ms", "10"))
        params: dict[str, Any] = {
            "messages": n,
            "max_connections": connections,
            "worker_concurrency": connections,
            "relay_delay_ms": delay_ms,
            "repeat": options.repeat,
            "processes": list(PROCESSES),
            "database": "postgresql",
        }
        if "postgresql" not in options.databases:
            return ScenarioResult(
                self.name, "n/a", params, reason="needs PostgreSQL (--databases postgresql)"
            )
        try:
            visitmail_binary()
        except PeerUnavailable as e:
            return ScenarioResult(self.name, "n/a", params, reason=e.reason)
        variants = {p: _Variant(p) for p in PROCESSES}
        order = list(PROCESSES)
        for _ in range(options.repeat):
            for processes in order:
                variants[processes].runs.append(
                    await _run_once(processes, n, connections, delay_ms / 1000, progress)
                )
            order.reverse()
        return _result(self.name, params, variants, n, options)


def _result(
    name: str,
    params: dict[str, Any],
    variants: dict[int, _Variant],
    n: int,
    options: ScenarioOptions,
) -> ScenarioResult:
    rates: dict[int, float | None] = {}
    measurements: list[Measurement] = []
    notes: list[str] = []
    failed = False
    for processes, variant in variants.items():
        times = variant.seconds()
        errors = [r.error for r in variant.runs if r.error]
        failed = failed or bool(errors)
        rate = n / statistics.median(times) if times and not errors else None
        rates[processes] = rate
        peaks = sorted({r.peak_connections for r in variant.runs if r.peak_connections})
        note = "connections seen by the relay: " + ", ".join(map(str, peaks)) if peaks else ""
        if errors:
            note = f"failed: {errors[0]}"
            notes.append(f"{processes} worker process(es): {errors[0]}")
        measurements.append(
            Measurement(
                peer=f"{processes} worker" + ("s" if processes > 1 else ""),
                metric="throughput",
                value=rate,
                unit="msgs/s",
                database="postgresql",
                samples=tuple(n / s for s in times),
                note=note,
            )
        )
    base, doubled = rates.get(1), rates.get(2)
    ratio = doubled / base if base and doubled else None
    measurements = [
        Measurement(
            m.peer,
            m.metric,
            m.value,
            m.unit,
            database=m.database,
            ratio=(m.value / base) if base and m.value is not None else None,
            samples=m.samples,
            note=m.note,
        )
        for m in measurements
    ]
    notes.insert(
        0,
        "max_connections is per organization *per worker process*: 2 processes may hold twice "
        "the connections; the ratio says whether the second process's connections are used "
        "as well as the first's (nothing outside the SMTP conversations serializes them)",
    )
    target = judge(
        f"scale: 2 worker processes >= {GOAL}x 1 process (postgresql, relay "
        f"{params['relay_delay_ms']:g} ms each way)",
        ratio,
        GOAL,
        "higher",
        options.size,
    )
    return ScenarioResult(
        name,
        "failed" if failed else "ok",
        params,
        measurements=measurements,
        targets=[target],
        notes=notes,
    )


SCENARIO = ScaleScenario()
