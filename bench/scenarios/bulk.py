"""``bulk``: a bulk follow-up as a user starts it: ``POST /api/v1/follow-ups/bulk`` for N
reports (in chunks of at most 500, the API's limit) until every message is ``sent``.

Per database, one fresh ``visitmail serve`` (:mod:`bench.api_harness`) with its in-process
worker; SMTP settings point at a fresh Postfix ``smtp-sink`` (security none, K connections,
no rate limits), the same for all its runs (the worker caches SMTP settings for seconds).
Untimed setup: an event, a follow-up template with
placeholders (salutation, company, an answer, the reporter's name; text and HTML) and
``N x repeat`` reports of consenting leads, captured through the API. Timed: from the first
bulk request to the moment ``GET /api/v1/messages`` counts all N more messages ``sent``.
Each run sends its own N reports (the outbox keeps the earlier runs' messages, a few
thousand at most); 10 follow-ups go out first, untimed, as a warm-up.

Peer: ``bench/nodemailer/bulk.js`` renders the same template for the same N leads (plain
placeholder substitution) and sends them through Nodemailer's pooled transport with the same
K connections, no durability: the baseline; ``ratio`` = visitmail / Nodemailer throughput.

A run counts only if the sink received exactly N messages with N distinct Message-IDs (and
the API says N queued and N sent); otherwise the scenario is ``failed`` with the reason.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from bench.api_harness import (
    FOLLOW_UP_TEMPLATE,
    SENDER,
    ApiError,
    ApiServer,
    ServerFailed,
    describe,
    median,
    new_run_id,
    report_body,
    visitmail_server,
    wait_until_sent,
)
from bench.api_node import NodeScriptFailed, ensure_node, run_script
from bench.peers.base import PeerUnavailable
from bench.scenarios.base import (
    DatabaseKind,
    Measurement,
    Progress,
    ScenarioOptions,
    ScenarioResult,
    judge,
)
from bench.sink import Sink, SinkUnavailable, find_smtp_sink, start_sink

CHUNK = 500  # the API's limit per bulk request
TARGET = 1000.0  # msgs/s, issue 9
WARM_UP = 10  # follow-ups sent before the first measured run


class RunFailed(Exception):
    """Messages were lost or duplicated, or the API refused: the reason."""


def _values(i: int) -> dict[str, str]:
    """The placeholder values of lead ``i`` for the Node.js peer (as visitmail renders
    them: ``lead()`` in bench.api_harness)."""
    body = report_body("-", i)
    lead, answers = body["lead"], body["answers"]
    title = f"{lead['title']} " if lead["title"] else ""
    honorific = "Ms" if lead["gender"] == "female" else "Mr"
    return {
        "salutation": f"Dear {honorific} {title}{lead['last_name']}",
        "lead.company": lead["company"],
        "answers.interest": str(answers["interest"]),
        "reporter.name": "Bench Admin",
    }


async def _check_sink(sink: Sink, expected: int) -> None:
    """Stop ``sink``; exactly ``expected`` messages, each Message-ID once, else
    :class:`RunFailed`."""
    received = await sink.wait_for_count(expected, within=10, settle=0.2)
    await sink.stop()
    ids = sink.message_ids()
    if received != expected or len(ids) != expected or len(set(ids)) != expected:
        raise RunFailed(
            f"the sink received {received} messages ({len(set(ids))} distinct Message-IDs), "
            f"expected exactly {expected}"
        )


@dataclass
class Outbound:
    """A server sending to one sink for its whole life (the worker caches SMTP settings
    for a few seconds, so the sink is not changed between runs). ``api_sent``: messages
    the outbox counts ``sent``; ``sink_sent``: messages the sink must have received."""

    server: ApiServer
    sink: Sink
    api_sent: int = 0
    sink_sent: int = 0

    async def bulk(self, report_ids: list[str]) -> tuple[float, float]:
        """One timed bulk send of ``report_ids``: (seconds until all are ``sent`` in the
        API, seconds of the bulk requests alone). :class:`RunFailed` if anything was
        refused, lost or duplicated."""
        n = len(report_ids)
        started = time.monotonic()
        for offset in range(0, n, CHUNK):
            chunk = report_ids[offset : offset + CHUNK]
            summary = await self.server.api.bulk_follow_up(chunk)
            if summary.get("queued", 0) != len(chunk):
                raise RunFailed(f"bulk request queued {summary}, expected {len(chunk)} queued")
        enqueued = time.monotonic()
        self.api_sent += n
        self.sink_sent += n
        try:
            done, counts = await wait_until_sent(
                self.server.api,
                self.api_sent,
                stall=60,
                sink_count=lambda: max(0, self.sink.received() - self.sink_sent + self.api_sent),
            )
        except (TimeoutError, RuntimeError) as e:
            raise RunFailed(str(e)) from e
        received = await self.sink.wait_for_count(self.sink_sent, within=10, settle=0.05)
        if counts.get("sent") != self.api_sent or received != self.sink_sent:
            raise RunFailed(
                f"the outbox counts {counts} and the sink {received}, expected "
                f"{self.api_sent} sent and {self.sink_sent} received"
            )
        return done - started, enqueued - started

    async def verify(self) -> None:
        """Stop the sink: every message once (distinct Message-IDs), else :class:`RunFailed`."""
        await _check_sink(self.sink, self.sink_sent)


@asynccontextmanager
async def outbound(server: ApiServer, connections: int) -> AsyncIterator[Outbound]:
    """A fresh smtp-sink, the server's SMTP settings pointing at it (``connections``)."""
    sink = await start_sink(record_message_ids=True)
    try:
        await server.api.configure_smtp(sink.host, sink.port, connections=connections)
        yield Outbound(server, sink)
    finally:
        await sink.close()


async def _nodemailer_run(node: str, n: int, connections: int) -> float:
    sink = await start_sink(record_message_ids=True)
    try:
        job: dict[str, Any] = {
            "host": sink.host,
            "port": sink.port,
            "connections": connections,
            "from": f"Bench Sales <{SENDER}>",
            "template": FOLLOW_UP_TEMPLATE,
            "headers": {
                "List-Unsubscribe": "<http://127.0.0.1:8000/api/v1/unsubscribe/" + "x" * 120 + ">",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
            "leads": [
                {"to": report_body("-", i, run="nm")["lead"]["email"], "values": _values(i)}
                for i in range(n)
            ],
        }
        result = await run_script(node, "bulk.js", job)
        if result.get("error"):
            raise RunFailed(f"nodemailer: {result['error']}")
        await _check_sink(sink, n)
        return float(result["seconds"])
    finally:
        await sink.close()


class BulkScenario:
    name = "bulk"
    description = "bulk follow-ups through the API until every message is sent, vs Nodemailer"

    async def run(self, options: ScenarioOptions, progress: Progress) -> ScenarioResult:
        started = time.monotonic()
        n = options.number("messages", smoke=20, full=2000)
        connections = options.number("connections", smoke=4, full=8)
        repeat = options.number("repeat", smoke=1, full=options.repeat)
        result = ScenarioResult(
            "bulk",
            "ok",
            params={"messages": n, "connections": connections, "repeat": repeat, "chunk": CHUNK},
        )
        try:
            await self._measure(options, progress, result, n, connections, repeat)
        except SinkUnavailable as e:
            result.status, result.reason = "n/a", str(e)
        except (RunFailed, ApiError, ServerFailed, NodeScriptFailed, httpx.HTTPError) as e:
            result.status, result.reason = "failed", describe(e)
        result.seconds = time.monotonic() - started
        return result

    async def _measure(
        self,
        options: ScenarioOptions,
        progress: Progress,
        result: ScenarioResult,
        n: int,
        connections: int,
        repeat: int,
    ) -> None:
        node: str | None = None
        try:
            node = await ensure_node()
        except PeerUnavailable as e:
            result.notes.append(f"nodemailer: n/a ({e.reason})")
        nodemailer: list[float] = []
        per_db: dict[DatabaseKind, tuple[list[float], list[float]]] = {}
        for kind in options.databases:
            try:
                async with visitmail_server(kind, progress) as server:
                    event_id = await server.api.create_event()
                    await server.api.put_template(event_id)
                    total = n * repeat + WARM_UP
                    progress(f"  bulk/{kind}: capturing {total} reports (untimed)")
                    ids = await server.api.capture_many(event_id, total, run=new_run_id())
                    throughputs: list[float] = []
                    enqueues: list[float] = []
                    async with outbound(server, connections) as out:
                        # Warm-up: first renders and connections are not what bulk costs.
                        await out.bulk(ids[:WARM_UP])
                        ids = ids[WARM_UP:]
                        for r in range(repeat):
                            seconds, enqueue = await out.bulk(ids[r * n : (r + 1) * n])
                            throughputs.append(n / seconds)
                            enqueues.append(n / enqueue)
                            progress(
                                f"  bulk/{kind} run {r + 1}/{repeat}: visitmail "
                                f"{n / seconds:.0f} msgs/s (bulk requests {n / enqueue:.0f} msgs/s)"
                            )
                            if node is not None:
                                nm = await _nodemailer_run(node, n, connections)
                                nodemailer.append(n / nm)
                                progress(
                                    f"  bulk run {r + 1}/{repeat}: nodemailer {n / nm:.0f} msgs/s"
                                )
                        await out.verify()
                    per_db[kind] = (throughputs, enqueues)
            except PeerUnavailable as e:
                result.notes.append(f"visitmail on {kind}: n/a ({e.reason})")
        baseline = median(nodemailer) if nodemailer else None
        for kind, (throughputs, enqueues) in per_db.items():
            value = median(throughputs)
            result.measurements.append(
                Measurement(
                    "visitmail",
                    "throughput",
                    value,
                    "msgs/s",
                    database=kind,
                    ratio=value / baseline if baseline else None,
                    samples=tuple(throughputs),
                    note="first bulk request to all sent (API counts)",
                )
            )
            result.measurements.append(
                Measurement(
                    "visitmail",
                    "enqueue",
                    median(enqueues),
                    "msgs/s",
                    database=kind,
                    samples=tuple(enqueues),
                    note="the bulk requests alone",
                )
            )
            result.targets.append(
                judge(f"bulk msgs/s >= 1000 ({kind})", value, TARGET, "higher", options.size)
            )
        if baseline is not None:
            result.measurements.append(
                Measurement(
                    "nodemailer",
                    "throughput",
                    baseline,
                    "msgs/s",
                    ratio=1.0,
                    samples=tuple(nodemailer),
                    note="render + pooled send, no durability",
                )
            )
        if not per_db:
            result.status, result.reason = "n/a", "visitmail could not run on any database"
        result.notes.append("sink: Postfix smtp-sink" if find_smtp_sink() else "sink: aiosmtpd")


SCENARIO = BulkScenario()
