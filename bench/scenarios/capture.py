"""``capture``: reports captured through ``POST /api/v1/reports`` with 16 requests in flight,
as the app's users at a fair send them.

Per database: one fresh ``visitmail serve`` (an event with questions, the organization
admin's token) and, beside it, the framework floor ``bench.api_floor`` (FastAPI under
uvicorn, one ``SELECT`` for the token, one ``INSERT`` of the JSON, on a fresh database of
the same kind). Each run sends C reports to each of them in turn (after a warm-up of 16
untimed requests): throughput = C / wall time, and every request's latency (p50, p99).
``ratio`` = visitmail / floor throughput.

A run counts only if every request answered 201 with a distinct id and the server then
lists (visitmail: ``GET /api/v1/reports``; floor: ``GET /count``) exactly the reports sent.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.api_harness import (
    HOST,
    ApiError,
    ServerFailed,
    describe,
    free_port,
    median,
    new_run_id,
    percentile,
    report_body,
    start_process,
    stop_process,
    visitmail_server,
    wait_http_ready,
)
from bench.databases import fresh_database
from bench.peers.base import PeerUnavailable
from bench.scenarios.base import (
    DatabaseKind,
    Measurement,
    Progress,
    ScenarioOptions,
    ScenarioResult,
    judge,
)

IN_FLIGHT = 16
WARM_UP = 16
TARGET = 500.0  # reports/s, issue 9
_REPO_ROOT = Path(__file__).resolve().parent.parent.parent


class RunFailed(Exception):
    """A request failed or a report was lost or duplicated: the reason."""


@dataclass(frozen=True)
class Run:
    seconds: float
    latencies_ms: list[float]
    ids: list[str]


async def drive(
    client: httpx.AsyncClient, make_body: Callable[[int], dict[str, Any]], count: int
) -> Run:
    """POST ``count`` reports, ``IN_FLIGHT`` at once; every answer must be 201."""
    latencies: list[float] = []
    ids: list[str] = []
    numbers = iter(range(count))

    async def one_client() -> None:
        for i in numbers:
            body = make_body(i)
            sent = time.perf_counter()
            reply = await client.post("/api/v1/reports", json=body)
            latencies.append((time.perf_counter() - sent) * 1000)
            if reply.status_code != 201:
                raise RunFailed(
                    f"POST /api/v1/reports answered {reply.status_code}: {reply.text[:200]}"
                )
            ids.append(str(reply.json()["id"]))

    started = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(min(IN_FLIGHT, count))))
    return Run(time.perf_counter() - started, latencies, ids)


@asynccontextmanager
async def floor_server(kind: DatabaseKind) -> AsyncIterator[httpx.AsyncClient]:
    """``bench.api_floor`` on a fresh database of ``kind``; a client with its token."""
    token = secrets.token_urlsafe(32)
    async with fresh_database(kind) as url:
        port = free_port()
        workdir = Path(tempfile.mkdtemp(prefix="visitmail-bench-floor-"))
        log = workdir / "floor.log"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(_REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        argv = [sys.executable, "-m", "bench.api_floor", "--database-url", url]
        argv += ["--port", str(port), "--token", token]
        process = await start_process(argv, env, _REPO_ROOT, log)
        try:
            base = f"http://{HOST}:{port}"
            await wait_http_ready(f"{base}/healthz", process, log)
            limits = httpx.Limits(max_connections=IN_FLIGHT * 2)
            async with httpx.AsyncClient(
                base_url=base,
                headers={"Authorization": f"Bearer {token}"},
                timeout=120,
                limits=limits,
            ) as client:
                yield client
        finally:
            await stop_process(process)
            shutil.rmtree(workdir, ignore_errors=True)


async def _visitmail_count(client: httpx.AsyncClient, event_id: str) -> set[str]:
    found: set[str] = set()
    offset = 0
    while True:
        reply = await client.get(
            "/api/v1/reports", params={"event_id": event_id, "limit": 500, "offset": offset}
        )
        if reply.status_code != 200:
            raise ApiError(f"GET /api/v1/reports answered {reply.status_code}: {reply.text[:200]}")
        page = [str(r["id"]) for r in reply.json()]
        found.update(page)
        if len(page) < 500:
            return found
        offset += 500


def _check(run: Run, count: int, peer: str) -> None:
    if len(run.ids) != count or len(set(run.ids)) != count:
        raise RunFailed(f"{peer}: {len(set(run.ids))} distinct ids for {count} reports")


class CaptureScenario:
    name = "capture"
    description = "POST /api/v1/reports, 16 in flight: reports/s and latency, vs a FastAPI floor"

    async def run(self, options: ScenarioOptions, progress: Progress) -> ScenarioResult:
        started = time.monotonic()
        count = options.number("reports", smoke=30, full=2000)
        repeat = options.number("repeat", smoke=1, full=options.repeat)
        result = ScenarioResult(
            "capture",
            "ok",
            params={"reports": count, "in_flight": IN_FLIGHT, "repeat": repeat},
        )
        measured = 0
        try:
            for kind in options.databases:
                try:
                    await self._one_database(kind, options, progress, result, count, repeat)
                    measured += 1
                except PeerUnavailable as e:
                    result.notes.append(f"{kind}: n/a ({e.reason})")
            if not measured:
                result.status, result.reason = "n/a", "no database could be used"
        except (RunFailed, ApiError, ServerFailed, httpx.HTTPError) as e:
            result.status, result.reason = "failed", describe(e)
        result.seconds = time.monotonic() - started
        return result

    async def _one_database(
        self,
        kind: DatabaseKind,
        options: ScenarioOptions,
        progress: Progress,
        result: ScenarioResult,
        count: int,
        repeat: int,
    ) -> None:
        vm_runs: list[Run] = []
        floor_runs: list[Run] = []
        async with visitmail_server(kind, progress) as server, floor_server(kind) as floor:
            event_id = await server.api.create_event()
            run_id = new_run_id()
            serial = iter(range(10**9))

            def body(_: int) -> dict[str, Any]:
                return report_body(event_id, next(serial), run=run_id)

            await drive(server.client, body, WARM_UP)
            await drive(floor, body, WARM_UP)
            for r in range(repeat):
                vm = await drive(server.client, body, count)
                _check(vm, count, "visitmail")
                vm_runs.append(vm)
                fl = await drive(floor, body, count)
                _check(fl, count, "floor")
                floor_runs.append(fl)
                progress(
                    f"  capture/{kind} run {r + 1}/{repeat}: visitmail {count / vm.seconds:.0f} "
                    f"reports/s, floor {count / fl.seconds:.0f} reports/s"
                )
            listed = await _visitmail_count(server.client, event_id)
            expected = WARM_UP + count * repeat
            sent = {i for run in vm_runs for i in run.ids}
            if len(listed) != expected or not sent <= listed:
                raise RunFailed(f"visitmail lists {len(listed)} reports, {expected} were captured")
            stored = int((await floor.get("/count")).json()["count"])
            if stored != expected:
                raise RunFailed(f"the floor stored {stored} reports, {expected} were sent")
        self._report(kind, options, result, count, vm_runs, floor_runs)

    def _report(
        self,
        kind: DatabaseKind,
        options: ScenarioOptions,
        result: ScenarioResult,
        count: int,
        vm_runs: list[Run],
        floor_runs: list[Run],
    ) -> None:
        floor_rate = median([count / r.seconds for r in floor_runs])
        for peer, runs in (("visitmail", vm_runs), ("floor", floor_runs)):
            rates = [count / r.seconds for r in runs]
            rate = median(rates)
            latencies = [x for r in runs for x in r.latencies_ms]
            result.measurements.append(
                Measurement(
                    peer,
                    "throughput",
                    rate,
                    "reports/s",
                    database=kind,
                    ratio=rate / floor_rate,
                    samples=tuple(rates),
                )
            )
            for p in (50, 99):
                result.measurements.append(
                    Measurement(
                        peer,
                        f"p{p}",
                        percentile(latencies, p),
                        "ms",
                        better="lower",
                        database=kind,
                        note="request latency, 16 in flight",
                    )
                )
            if peer == "visitmail":
                result.targets.append(
                    judge(
                        f"capture reports/s >= 500 ({kind})", rate, TARGET, "higher", options.size
                    )
                )


SCENARIO = CaptureScenario()
