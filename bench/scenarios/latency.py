"""``latency``: a report is exported from the app; how long until its notification is
accepted by the SMTP server? Steady exports, ``POST /api/v1/reports/{id}/export`` at a fixed
rate (open loop: a slow answer does not delay the next request), in two variants: the
notification without attachment (full: 50/s), and with the report's PDF attached (full:
20/s; the mapping's ``attach_pdf``). Full runs last about 15 s per variant, smoke runs 1 s
at 5/s.

Per database: one fresh ``visitmail serve`` with its in-process worker, SMTP settings
pointing at a timestamping aiosmtpd sink in its own process (:mod:`bench.api_sink`), an
event, and a notification mapping whose one rule mails ``sales@bench.example`` on
``exported`` with the subject ``visitmail-latency {{ id }}``. Reports are captured in setup
(untimed), one more per variant is exported and awaited first as a warm-up. Latency = the
sink's arrival time of the report's notification - the time the export request was sent
(both wall clock, same machine). Reported: p50, p95, p99 per variant, and the achieved rate
(notifications delivered per second over the run; below the requested rate means the server
fell behind).

Peer: ``bench/nodemailer/steady.js``, Nodemailer's pooled transport (same connection count)
sending the equivalent mail directly per trigger (no outbox), with the PDF variant attaching
the PDF bytes visitmail rendered: the floor. ``ratio`` = visitmail / Nodemailer latency.

A run counts only if every export answered 200 with one queued email, and every report's
notification arrived exactly once (with a PDF in the PDF variant); else ``failed``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.api_harness import (
    SENDER,
    ApiError,
    ServerFailed,
    describe,
    new_run_id,
    percentile,
    visitmail_server,
)
from bench.api_node import NodeScriptFailed, ensure_node, run_script
from bench.api_sink import TimedSink, start_timed_sink
from bench.peers.base import PeerUnavailable
from bench.scenarios.base import (
    DatabaseKind,
    Measurement,
    Progress,
    ScenarioOptions,
    ScenarioResult,
    judge,
)
from bench.sink import SinkUnavailable

CONNECTIONS = 8
TAG = "visitmail-latency"
NOTIFY = "sales@bench.example"


class RunFailed(Exception):
    """An export failed, or a notification was lost or duplicated: the reason."""


@dataclass(frozen=True)
class Variant:
    key: str  # "no_pdf" | "pdf"
    label: str
    pdf: bool
    rate: int  # exports per second
    count: int  # exports in the timed run


@dataclass(frozen=True)
class Latencies:
    """One peer's run of one variant: latencies in ms, and the achieved rate."""

    ms: list[float]
    achieved: float
    requested: float

    def p(self, q: float) -> float:
        return percentile(self.ms, q)


def mapping(pdf: bool) -> dict[str, Any]:
    return {
        "version": 1,
        "rules": [
            {
                "name": "Latency bench",
                "event": "*",
                "on": "exported",
                "actions": [
                    {
                        "email": {
                            "to": [NOTIFY],
                            "subject": TAG + " {{ id }}",
                            "body": "New lead: {{ lead.company }}, {{ lead.first_name }} "
                            "{{ lead.last_name }} <{{ lead.email }}>\n"
                            "Interest: {{ answers.interest }}\n{{ reporter.name }}\n",
                            "attach_pdf": pdf,
                        }
                    }
                ],
            }
        ],
    }


async def wait_arrivals(sink: TimedSink, expected: int, stall: float, cap: float = 900) -> None:
    """Until the sink holds ``expected`` messages, or none arrived for ``stall`` seconds, or
    ``cap`` seconds passed; then a short settle so duplicates show. A server that fell
    behind is waited for as long as it keeps delivering."""
    deadline = time.monotonic() + cap
    seen, last_change = sink.count(), time.monotonic()
    # The arrivals file is written by another process: polling is the only way to wait.
    while seen < expected:
        now = time.monotonic()
        if now > deadline or now - last_change > stall:
            break
        await asyncio.sleep(0.02)
        if (count := sink.count()) != seen:
            seen, last_change = count, time.monotonic()
    await asyncio.sleep(0.3)


async def steady(
    count: int, rate: float, fire: Callable[[int], Coroutine[Any, Any, None]]
) -> dict[int, float]:
    """Call ``fire(i)`` at ``start + i / rate`` for i < count without waiting for earlier
    calls; return each trigger's wall-clock time once every call is done. If calls raised
    :class:`RunFailed`, raises one saying how many and the first reason."""
    sent: dict[int, float] = {}
    tasks: list[asyncio.Task[None]] = []
    start = time.monotonic()
    try:
        for i in range(count):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sent[i] = time.time()
            tasks.append(asyncio.create_task(fire(i)))
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for task in tasks:
            task.cancel()
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    for failure in failures:
        if not isinstance(failure, RunFailed):
            raise failure
    if failures:
        raise RunFailed(f"{len(failures)} of {count} triggers failed; the first: {failures[0]}")
    return sent


def latencies(
    sent: dict[str, float], arrivals: dict[str, list[float]], variant: Variant, who: str
) -> Latencies:
    """Match triggers with arrivals by subject; exactly one each, else :class:`RunFailed`."""
    lost = [key for key in sent if not arrivals.get(key)]
    twice = [key for key, times in arrivals.items() if key in sent and len(times) > 1]
    if lost or twice:
        raise RunFailed(
            f"{who}, {variant.label}: {len(lost)} notifications lost, {len(twice)} duplicated "
            f"(of {len(sent)})"
        )
    ms = [(arrivals[key][0] - at) * 1000 for key, at in sent.items()]
    first = min(sent.values())
    last = max(arrivals[key][0] for key in sent)
    requested_span = len(sent) / variant.rate
    achieved = len(sent) / max(requested_span, last - first)
    return Latencies(ms, achieved, float(variant.rate))


async def _export(client: httpx.AsyncClient, report_id: str) -> None:
    try:
        reply = await client.post(f"/api/v1/reports/{report_id}/export")
    except httpx.HTTPError as e:
        raise RunFailed(f"export failed: {type(e).__name__} {e}") from e
    if reply.status_code != 200:
        raise RunFailed(f"export answered {reply.status_code}: {reply.text[:200]}")
    notifications = reply.json()["notifications"]
    queued = [n for n in notifications if n["kind"] == "email" and n["message_id"]]
    if len(queued) != 1:
        raise RunFailed(f"export queued {notifications}, expected one email")


def _arrivals_by_subject(
    sink: TimedSink, prefix: str, pdf_for: Collection[str] = ()
) -> dict[str, list[float]]:
    """Arrival times by the subject's key (after ``prefix``); each key in ``pdf_for``
    must have come with a PDF."""
    found: dict[str, list[float]] = {}
    for arrival in sink.arrivals():
        if arrival.subject.startswith(prefix + " "):
            key = arrival.subject[len(prefix) + 1 :]
            if key in pdf_for and not arrival.has_pdf:
                raise RunFailed(f"a notification arrived without its PDF: {arrival.subject}")
            found.setdefault(key, []).append(arrival.at)
    return found


class LatencyScenario:
    name = "latency"
    description = "export -> notification accepted by the sink (p50/p95/p99), with and without PDF"

    async def run(self, options: ScenarioOptions, progress: Progress) -> ScenarioResult:
        started = time.monotonic()
        seconds = options.number("seconds", smoke=1, full=15)
        rate = options.number("rate", smoke=5, full=50)
        pdf_rate = options.number("pdf_rate", smoke=5, full=20)
        variants = [
            Variant("no_pdf", "no PDF", False, rate, rate * seconds),
            Variant("pdf", "PDF", True, pdf_rate, pdf_rate * seconds),
        ]
        result = ScenarioResult(
            "latency",
            "ok",
            params={
                "seconds": seconds,
                "connections": CONNECTIONS,
                **{f"rate_{v.key}": v.rate for v in variants},
            },
        )
        measured: dict[tuple[str, DatabaseKind | None, str], Latencies] = {}
        pdf_bytes: list[bytes] = []
        try:
            for kind in options.databases:
                try:
                    found: dict[str, Latencies] = {}
                    try:
                        await self._visitmail(kind, variants, progress, pdf_bytes, found)
                    finally:  # a failed variant keeps the figures of those before it
                        for key, value in found.items():
                            measured[("visitmail", kind, key)] = value
                except PeerUnavailable as e:
                    result.notes.append(f"visitmail on {kind}: n/a ({e.reason})")
            try:
                node = await ensure_node()
                for variant in variants:
                    pdf = pdf_bytes[0] if pdf_bytes else b"%PDF-1.4\n" + b"0" * 30_000
                    measured[("nodemailer", None, variant.key)] = await self._nodemailer(
                        node, variant, pdf, progress
                    )
                if not pdf_bytes:
                    result.notes.append("nodemailer PDF variant: a 30 KB stand-in attachment")
            except PeerUnavailable as e:
                result.notes.append(f"nodemailer: n/a ({e.reason})")
        except SinkUnavailable as e:
            result.status, result.reason = "n/a", str(e)
        except (RunFailed, ApiError, ServerFailed, NodeScriptFailed, httpx.HTTPError) as e:
            result.status, result.reason = "failed", describe(e)
        self._report(options, result, variants, measured)
        if result.status == "ok" and not any(peer == "visitmail" for peer, _, _ in measured):
            result.status, result.reason = "n/a", "visitmail could not run on any database"
        result.seconds = time.monotonic() - started
        return result

    async def _visitmail(
        self,
        kind: DatabaseKind,
        variants: list[Variant],
        progress: Progress,
        pdf_bytes: list[bytes],
        out: dict[str, Latencies],
    ) -> None:
        """Measure each variant on ``kind`` into ``out`` (variant key -> latencies)."""
        sink = await start_timed_sink()
        try:
            async with visitmail_server(kind, progress, max_connections=2000) as server:
                await server.api.configure_smtp(sink.host, sink.port, connections=CONNECTIONS)
                event_id = await server.api.create_event()
                total = sum(v.count + 1 for v in variants)
                progress(f"  latency/{kind}: capturing {total} reports (untimed)")
                ids = await server.api.capture_many(event_id, total, run=new_run_id())
                delivered = 0
                for variant in variants:
                    await server.api.put_mapping(mapping(variant.pdf))
                    warm, timed = ids[0], ids[1 : variant.count + 1]
                    ids = ids[variant.count + 1 :]
                    await _export(server.client, warm)  # warm-up: first render, connections
                    delivered += 1
                    await wait_arrivals(sink, delivered, stall=60)
                    progress(
                        f"  latency/{kind} {variant.label}: {variant.count} exports at "
                        f"{variant.rate}/s"
                    )

                    def fire(
                        i: int, client: httpx.AsyncClient = server.client, timed: list[str] = timed
                    ) -> Coroutine[Any, Any, None]:
                        return _export(client, timed[i])

                    triggered = await steady(len(timed), variant.rate, fire)
                    delivered += len(timed)
                    await wait_arrivals(sink, delivered, stall=30)
                    sent = {timed[i]: at for i, at in triggered.items()}
                    arrivals = _arrivals_by_subject(sink, TAG, sent if variant.pdf else ())
                    found = latencies(sent, arrivals, variant, f"visitmail on {kind}")
                    extra = sum(len(v) for v in arrivals.values()) - delivered
                    if extra:
                        raise RunFailed(f"visitmail on {kind}: {extra} unexpected notifications")
                    out[variant.key] = found
                    progress(
                        f"  latency/{kind} {variant.label}: p50 {found.p(50):.0f} ms, "
                        f"p99 {found.p(99):.0f} ms, {found.achieved:.1f}/s of {variant.rate}/s"
                    )
                if sink.pdf_file.exists() and not pdf_bytes:
                    pdf_bytes.append(sink.pdf_file.read_bytes())
        finally:
            await sink.close()

    async def _nodemailer(
        self, node: str, variant: Variant, pdf: bytes, progress: Progress
    ) -> Latencies:
        sink = await start_timed_sink()
        try:
            tag = f"nodemailer-latency-{variant.key}"
            attachment = None
            if variant.pdf:
                path = Path(sink.workdir) / "attachment.pdf"
                path.write_bytes(pdf)
                attachment = {"path": str(path), "filename": "report.pdf"}
            job = {
                "host": sink.host,
                "port": sink.port,
                "connections": CONNECTIONS,
                "from": SENDER,
                "to": NOTIFY,
                "rate": variant.rate,
                "count": variant.count,
                "tag": tag,
                "attachment": attachment,
            }
            report = await run_script(node, "steady.js", job)
            if report.get("error") or int(report["sent"]) != variant.count:
                raise RunFailed(f"nodemailer {variant.label}: {report.get('error')}")
            await wait_arrivals(sink, variant.count, stall=30)
            sent = {str(i): float(ms) / 1000 for i, ms in report["triggers"]}
            arrivals = _arrivals_by_subject(sink, tag, sent if variant.pdf else ())
            found = latencies(sent, arrivals, variant, "nodemailer")
            progress(
                f"  latency nodemailer {variant.label}: p50 {found.p(50):.1f} ms, "
                f"p99 {found.p(99):.1f} ms"
            )
            return found
        finally:
            await sink.close()

    def _report(
        self,
        options: ScenarioOptions,
        result: ScenarioResult,
        variants: list[Variant],
        measured: dict[tuple[str, DatabaseKind | None, str], Latencies],
    ) -> None:
        for variant in variants:
            floor = measured.get(("nodemailer", None, variant.key))
            for (peer, kind, key), found in measured.items():
                if key != variant.key:
                    continue
                for q in (50, 95, 99):
                    value = found.p(q)
                    base = floor.p(q) if floor is not None else None
                    result.measurements.append(
                        Measurement(
                            peer,
                            f"p{q}_{variant.key}",
                            value,
                            "ms",
                            better="lower",
                            database=kind,
                            ratio=value / base if base else None,
                            note=f"export -> accepted, {variant.label}, {variant.rate}/s",
                        )
                    )
                result.measurements.append(
                    Measurement(
                        peer,
                        f"rate_{variant.key}",
                        found.achieved,
                        "msgs/s",
                        database=kind,
                        note=f"achieved of {variant.rate}/s requested"
                        + (" (fell behind)" if found.achieved < 0.95 * variant.rate else ""),
                    )
                )
                if peer != "visitmail" or kind is None:
                    continue
                goals = [(99, 500.0)] if variant.pdf else [(50, 50.0), (99, 250.0)]
                for q, goal in goals:
                    result.targets.append(
                        judge(
                            f"latency {variant.label} p{q} <= {goal:.0f} ms ({kind})",
                            found.p(q),
                            goal,
                            "lower",
                            options.size,
                        )
                    )


SCENARIO = LatencyScenario()
