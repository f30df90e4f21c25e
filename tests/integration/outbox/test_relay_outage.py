"""A relay down for a minute: one organization's mail waits (deferred with the reason,
then its queue paused and probed, as designed) and flows when the relay returns on the
same port; another organization's mail goes out on time meanwhile. Nothing is lost and
nothing is sent twice.

The test owns the clock (:class:`~tests.support.outbox.ManualClock`): retries, the pause
and the probes follow it, so "a minute" passes in a few real seconds and no step races
the wall clock. Every step waits for what the database shows, not for a sleep.
"""

from __future__ import annotations

import asyncio
import collections
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.orgs import OrgFixture, new_org
from tests.support.outbox import ManualClock, configure_server, enqueue, make_worker
from tests.support.processes import free_port
from tests.support.smtp_servers import SmtpServer, start_smtp_server
from visitmail.domain.outbox import MessageStatus
from visitmail.domain.retry_policy import RetryPolicy
from visitmail.domain.smtp_settings import Limits
from visitmail.runtime import Runtime
from visitmail.services import outbox
from visitmail.services.delivery import DeliveryPolicy
from visitmail.services.outbox_ports import MessageView, ServerHealth
from visitmail.worker import DeliveryWorker

# The shipped schedule's shape, without jitter so the times below are exact: retries
# after 30 s, then 60 s; the queue pauses after two failed connections in a row; the
# first probe comes 20 s after the pause, the next one 40 s after that.
POLICY = DeliveryPolicy(
    retry=RetryPolicy(base=timedelta(seconds=30), jitter=0),
    pause_after=2,
    first_probe=timedelta(seconds=20),
)
S = timedelta(seconds=1)


@pytest.fixture
async def servers() -> AsyncIterator[list[SmtpServer]]:
    started: list[SmtpServer] = []
    yield started
    for s in started:
        await s.close()


async def _views(runtime: Runtime, org: OrgFixture, ids: list[uuid.UUID]) -> list[MessageView]:
    async with runtime.uow() as uow:
        return [await outbox.get_message(uow, org.principal, pk) for pk in ids]


async def _health(runtime: Runtime, org: OrgFixture) -> ServerHealth | None:
    async with runtime.uow() as uow:
        return await uow.health.get(org.organization.id)


async def _until(
    worker: DeliveryWorker, done: Callable[[], Awaitable[bool]], what: str, limit: float = 20
) -> None:
    """Wait until ``done()`` holds and the worker holds nothing (everything written)."""
    try:
        async with asyncio.timeout(limit):
            while not (await done() and not len(worker.leases) and not worker.settler.pending):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not reached within {limit} s: {what}") from None


async def test_a_relay_down_for_a_minute_delays_only_its_organization(
    runtime: Runtime, servers: list[SmtpServer]
) -> None:
    a, b = await new_org(runtime, name="Relay Down"), await new_org(runtime, name="Relay Up")
    relay_b = await start_smtp_server()
    servers.append(relay_b)
    a_port = free_port()  # nothing listens here: A's relay refuses connections
    # one connection at a time for A, so each round makes exactly one connection attempt
    await configure_server(
        runtime, a, a_port, limits=Limits(max_connections=1, max_messages_per_connection=50)
    )
    await configure_server(runtime, b, relay_b.port)

    t0 = datetime.now(UTC).replace(microsecond=0)
    clock = ManualClock(t0)
    a_ids = [(await enqueue(runtime, a, [f"a{i}@example.org"], clock=clock))[0] for i in range(5)]
    b_ids = [(await enqueue(runtime, b, [f"b{i}@example.org"], clock=clock))[0] for i in range(5)]
    worker = make_worker(runtime, a, b, policy=POLICY, clock=clock)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        # t = 0: B's mail goes out; A's relay refuses, A's mail is deferred by 30 s.
        async def first_round() -> bool:
            health = await _health(runtime, a)
            sent_b = {v.status for v in await _views(runtime, b, b_ids)} == {MessageStatus.SENT}
            return sent_b and health is not None and health.consecutive_failures == 1

        await _until(worker, first_round, "B sent, A's first failure recorded")
        views_a = await _views(runtime, a, a_ids)
        assert {v.status for v in views_a} <= {MessageStatus.DEFERRED, MessageStatus.QUEUED}
        assert {v.not_before for v in views_a} == {t0 + 30 * S}  # the whole lane waits
        failures = [x for v in views_a for x in v.attempt_log if x.outcome == "server_failure"]
        assert len(failures) == 1  # one connection attempt for the lane, not one per message
        assert "connect" in failures[0].text and "refused" in failures[0].text.lower()
        assert {v.sent_at for v in await _views(runtime, b, b_ids)} == {t0}

        # t = 30 s: A's retry fails too and its queue pauses; B's new mail goes out now.
        clock.advance(30 * S)
        b_ids_later = [
            (await enqueue(runtime, b, [f"b-later{i}@example.org"], clock=clock))[0]
            for i in range(5)
        ]

        async def paused() -> bool:
            health = await _health(runtime, a)
            later = await _views(runtime, b, b_ids_later)
            sent_b = {v.status for v in later} == {MessageStatus.SENT}
            return sent_b and health is not None and health.paused

        await _until(worker, paused, "A paused, B's later mail sent")
        health = await _health(runtime, a)
        assert health is not None
        assert health.consecutive_failures == 2
        assert health.next_probe_at == t0 + 50 * S
        assert "paused after 2 failed connections" in (health.paused_reason or "")
        assert "refused" in (health.paused_reason or "").lower()
        assert {v.sent_at for v in await _views(runtime, b, b_ids_later)} == {t0 + 30 * S}
        # The lane waits for the retry time of the message that took the attempt: its
        # second attempt backs off 60 s, a message's first one 30 s (which message the
        # claim hands over first is the database's choice).
        views_a = await _views(runtime, a, a_ids)
        tried = [v for v in views_a for x in v.attempt_log if x.outcome == "server_failure"]
        backoff = 60 * S if tried[0].id == tried[1].id else 30 * S
        assert {v.not_before for v in views_a} == {t0 + 30 * S + backoff}

        # t = 50 s: the probe finds the relay still down and backs off to 40 s.
        clock.advance(20 * S)

        async def probed() -> bool:
            health = await _health(runtime, a)
            return health is not None and health.next_probe_at == t0 + 90 * S

        await _until(worker, probed, "A's failed probe rescheduled")

        # t = 60 s: the relay is back on the same port; A's queue still waits for its probe.
        relay_a = await start_smtp_server(port=a_port)
        servers.append(relay_a)
        clock.advance(10 * S)
        await asyncio.sleep(0.5)  # several claim rounds and probe rounds at t = 60 s
        assert relay_a.recorder.messages == []
        assert MessageStatus.SENT not in {v.status for v in await _views(runtime, a, a_ids)}

        # t = 90 s: the probe succeeds, the queue resumes, A's mail flows.
        clock.advance(30 * S)

        async def a_sent() -> bool:
            return {v.status for v in await _views(runtime, a, a_ids)} == {MessageStatus.SENT}

        await _until(worker, a_sent, "A's mail sent after the relay returned")
    finally:
        stop.set()
        await task

    health = await _health(runtime, a)
    assert health is not None and not health.paused and health.consecutive_failures == 0
    views_a = await _views(runtime, a, a_ids)
    assert {v.sent_at for v in views_a} == {t0 + 90 * S}
    assert not any(v.possible_duplicate for v in views_a)
    # nothing lost, nothing twice, nothing crossed over
    got_a = collections.Counter(m.rcpt_tos[0] for m in relay_a.recorder.messages)
    got_b = collections.Counter(m.rcpt_tos[0] for m in relay_b.recorder.messages)
    assert got_a == collections.Counter(f"a{i}@example.org" for i in range(5))
    assert got_b == collections.Counter(
        [f"b{i}@example.org" for i in range(5)] + [f"b-later{i}@example.org" for i in range(5)]
    )
    failures = [x for v in views_a for x in v.attempt_log if x.outcome == "server_failure"]
    assert sorted(x.at for x in failures) == [t0, t0 + 30 * S]  # the reasons are on record
