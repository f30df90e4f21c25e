"""``history``: does a follow-up cost more when the outbox already holds a long history?
The per-follow-up cost of a bulk follow-up through the API (N reports, default 500, until
every message is ``sent``) on an empty outbox vs one holding H finished follow-ups (full:
100,000; smoke: 500) with their reports, recipients, attempts and send records
(:mod:`bench.api_history`, seeded untimed with multi-row inserts into the real tables).

Per database: one fresh ``visitmail serve`` (:mod:`bench.api_harness`) with an event, a
follow-up template, SMTP settings pointing at a fresh Postfix ``smtp-sink`` and
``2 x N x repeat`` reports captured through the API. First the ``empty`` runs (the outbox
holds only the earlier runs' few messages), then the history is seeded, then the
``history`` runs on the same server. Reported: ms per follow-up for each (first bulk request to all
sent, and the bulk requests alone), and ``ratio`` = history / empty; target <= 1.2.

A run counts only if the sink received exactly N messages with distinct Message-IDs and
the API counts them ``sent``; otherwise ``failed``.
"""

from __future__ import annotations

import time

import httpx

from bench.api_harness import (
    ApiError,
    ApiServer,
    ServerFailed,
    describe,
    median,
    new_run_id,
    visitmail_server,
)
from bench.api_history import seed_history
from bench.peers.base import PeerUnavailable
from bench.scenarios.base import (
    DatabaseKind,
    Measurement,
    Progress,
    ScenarioOptions,
    ScenarioResult,
    judge,
)
from bench.scenarios.bulk import RunFailed, outbound
from bench.sink import SinkUnavailable, find_smtp_sink

TARGET = 1.2  # history / empty, issue 9
CONNECTIONS = 8
WARM_UP = 10  # follow-ups sent before the first measured run


class HistoryScenario:
    name = "history"
    description = "ms per follow-up with 100,000 finished messages in the outbox vs empty"

    async def run(self, options: ScenarioOptions, progress: Progress) -> ScenarioResult:
        started = time.monotonic()
        n = options.number("messages", smoke=20, full=500)
        history = options.number("history", smoke=500, full=100_000)
        repeat = options.number("repeat", smoke=1, full=options.repeat)
        result = ScenarioResult(
            "history",
            "ok",
            params={
                "messages": n,
                "history": history,
                "repeat": repeat,
                "connections": CONNECTIONS,
            },
        )
        measured = 0
        try:
            for kind in options.databases:
                try:
                    await self._one_database(kind, options, progress, result, n, history, repeat)
                    measured += 1
                except PeerUnavailable as e:
                    result.notes.append(f"{kind}: n/a ({e.reason})")
            if not measured:
                result.status, result.reason = "n/a", "no database could be used"
        except SinkUnavailable as e:
            result.status, result.reason = "n/a", str(e)
        except (RunFailed, ApiError, ServerFailed, httpx.HTTPError) as e:
            result.status, result.reason = "failed", describe(e)
        result.notes.append("sink: Postfix smtp-sink" if find_smtp_sink() else "sink: aiosmtpd")
        result.seconds = time.monotonic() - started
        return result

    async def _prepare(self, server: ApiServer, count: int) -> tuple[list[str], str, str]:
        event_id = await server.api.create_event()
        template_id = await server.api.put_template(event_id)
        ids = await server.api.capture_many(event_id, count, run=new_run_id())
        return ids, event_id, template_id

    async def _seed(
        self,
        server: ApiServer,
        kind: DatabaseKind,
        progress: Progress,
        history: int,
        event_id: str,
        template_id: str,
    ) -> None:
        me = await server.api.call("GET", "/api/v1/me")
        before = (await server.api.message_counts()).get("sent", 0)
        progress(f"  history/{kind}: seeding {history} finished follow-ups (untimed)")
        seeded = time.monotonic()
        await seed_history(
            server.database_url,
            history,
            organization_id=server.organization_id,
            event_id=event_id,
            template_id=template_id,
            user_id=str(me["user"]["id"]),
        )
        counts = await server.api.message_counts()
        if counts.get("sent") != before + history:
            raise RunFailed(f"seeded {history} messages after {before}, the API counts {counts}")
        progress(f"  history/{kind}: seeded in {time.monotonic() - seeded:.0f} s")

    async def _one_database(
        self,
        kind: DatabaseKind,
        options: ScenarioOptions,
        progress: Progress,
        result: ScenarioResult,
        n: int,
        history: int,
        repeat: int,
    ) -> None:
        totals: dict[str, list[float]] = {"empty": [], "history": []}
        posts: dict[str, list[float]] = {"empty": [], "history": []}
        async with visitmail_server(kind, progress) as server:
            progress(f"  history/{kind}: capturing {2 * n * repeat + WARM_UP} reports (untimed)")
            ids, event_id, template_id = await self._prepare(server, 2 * n * repeat + WARM_UP)
            async with outbound(server, CONNECTIONS) as out:
                # Warm-up (first renders, first connections), so neither case pays for them.
                await out.bulk(ids[:WARM_UP])
                ids = ids[WARM_UP:]
                for case in ("empty", "history"):
                    if case == "history":
                        await self._seed(server, kind, progress, history, event_id, template_id)
                        out.api_sent += history
                    for r in range(repeat):
                        chunk, ids = ids[:n], ids[n:]
                        seconds, enqueue = await out.bulk(chunk)
                        totals[case].append(seconds * 1000 / n)
                        posts[case].append(enqueue * 1000 / n)
                        progress(
                            f"  history/{kind} run {r + 1}/{repeat} {case}: "
                            f"{seconds * 1000 / n:.1f} ms per follow-up "
                            f"(bulk requests {enqueue * 1000 / n:.1f} ms)"
                        )
                await out.verify()
        empty, full = median(totals["empty"]), median(totals["history"])
        for case, metric_note in (("empty", "empty outbox"), ("history", f"{history} finished")):
            value = median(totals[case])
            result.measurements.append(
                Measurement(
                    f"visitmail-{case}",
                    "per_follow_up",
                    value,
                    "ms",
                    better="lower",
                    database=kind,
                    ratio=value / empty,
                    samples=tuple(totals[case]),
                    note=f"first bulk request to all sent, {metric_note}",
                )
            )
            result.measurements.append(
                Measurement(
                    f"visitmail-{case}",
                    "per_follow_up_request",
                    median(posts[case]),
                    "ms",
                    better="lower",
                    database=kind,
                    ratio=median(posts[case]) / median(posts["empty"]),
                    samples=tuple(posts[case]),
                    note=f"the bulk requests alone, {metric_note}",
                )
            )
        result.targets.append(
            judge(
                f"history/empty per follow-up <= 1.2 ({kind})",
                full / empty,
                TARGET,
                "lower",
                options.size,
            )
        )


SCENARIO = HistoryScenario()
