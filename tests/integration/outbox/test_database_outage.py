"""The database away for a moment while the worker runs (in process, both databases): the
worker's own reads fail exactly where a restart would make them fail, and the worker
carries on by itself. The whole-process version, a real PostgreSQL restart under a
5,000-message run, is ``test_database_restart``."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from tests.support.orgs import OrgFixture
from tests.support.outbox import (
    FAST_RETRY,
    LOOPBACK,
    configure_server,
    enqueue,
    make_worker,
    run_until,
)
from tests.support.smtp_servers import SmtpServer, start_smtp_server
from visitmail.adapters.db.outbox_repo import SqlOutbox
from visitmail.adapters.smtp.sender import SmtpSender
from visitmail.delivery import channels
from visitmail.delivery.worker import utcnow
from visitmail.domain.outbox import MessageStatus
from visitmail.domain.smtp_settings import Limits
from visitmail.runtime import Runtime
from visitmail.services import outbox, smtp_config
from visitmail.services.delivery import DeliveryPolicy


@pytest.fixture
async def server() -> AsyncIterator[SmtpServer]:
    s = await start_smtp_server()
    yield s
    await s.close()


def _fail_first(monkeypatch: pytest.MonkeyPatch, times: int) -> list[int]:
    """The worker's SMTP-settings read fails ``times`` times as it does while PostgreSQL
    restarts (the connection is refused), then works; returns the call counter."""
    real = smtp_config.load_for_sending
    calls = [0]

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] <= times:
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")
        return await real(*args, **kwargs)

    monkeypatch.setattr(smtp_config, "load_for_sending", flaky)
    return calls


async def test_a_settings_read_that_fails_with_the_database_is_tried_again(
    runtime: Runtime, org: OrgFixture, server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before the fix, the sender task died with the exception: its lane kept the claimed
    messages, leased and renewed forever, with nobody to send them."""
    await configure_server(
        runtime, org, server.port, limits=Limits(max_connections=2, max_messages_per_connection=50)
    )
    # more than one claim's worth, so the first claim fills the worker and only a living
    # lane can make room for the rest
    ids = [(await enqueue(runtime, org, [f"db{i}@example.org"]))[0] for i in range(40)]
    calls = _fail_first(monkeypatch, times=2)

    async def all_sent() -> bool:
        async with runtime.uow() as uow:
            counts = await uow.outbox.counts(org.organization.id)
        return counts[MessageStatus.SENT] == len(ids)

    await run_until(make_worker(runtime, org), all_sent, limit=20)

    assert calls[0] >= 3  # it failed twice, then read the settings
    received = collections.Counter(m.rcpt_tos[0] for m in server.recorder.messages)
    assert sorted(received) == sorted(f"db{i}@example.org" for i in range(40))
    assert set(received.values()) == {1}
    async with runtime.uow() as uow:
        health = await uow.health.get(org.organization.id)
        first = await outbox.get_message(uow, org.principal, ids[0])
    # the database was away, not the SMTP server: nothing counts towards a pause
    assert health is None or health.consecutive_failures == 0
    assert first.attempts == 1


async def test_while_the_database_cannot_be_read_the_settings_at_hand_keep_mail_flowing(
    runtime: Runtime, org: OrgFixture, server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    await configure_server(runtime, org, server.port)
    ids = [(await enqueue(runtime, org, [f"st{i}@example.org"]))[0] for i in range(10)]
    monkeypatch.setattr(channels, "SETTINGS_TTL", 0.0)  # every use reads them again
    calls = _fail_first(monkeypatch, times=0)
    real = smtp_config.load_for_sending

    async def first_read_only(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] > 1:  # the database went away after the first read
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")
        return await real(*args, **kwargs)

    monkeypatch.setattr(smtp_config, "load_for_sending", first_read_only)

    async def all_sent() -> bool:
        async with runtime.uow() as uow:
            counts = await uow.outbox.counts(org.organization.id)
        return counts[MessageStatus.SENT] == len(ids)

    await run_until(make_worker(runtime, org), all_sent, limit=20)

    assert calls[0] > 2  # it kept trying to read them, and sent with the copy it had
    assert len(server.recorder.messages) == len(ids)
    async with runtime.uow() as uow:
        views = [await outbox.get_message(uow, org.principal, pk) for pk in ids]
    assert {v.attempts for v in views} == {1}


async def test_without_settings_at_hand_a_database_error_defers_without_blaming_the_server(
    runtime: Runtime, org: OrgFixture, server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    await configure_server(runtime, org, server.port)
    pk, _ = await enqueue(runtime, org, ["nocopy@example.org"])
    async with runtime.uow() as uow:
        claimed = await uow.outbox.claim(
            "w-outage", 10, timedelta(minutes=5), utcnow(), frozenset({org.organization.id})
        )
        await uow.commit()
    (message,) = [c for c in claimed if c.id == pk]
    _fail_first(monkeypatch, times=1)
    channel = channels.SmtpChannel(runtime, SmtpSender(LOOPBACK))
    try:
        outcome = await channel.deliver(message)
    finally:
        await channel.close()

    assert outcome.server_failure is None  # the SMTP server is not at fault
    assert [(r.address, r.reply.code) for r in outcome.results] == [("nocopy@example.org", 451)]
    assert "database unavailable" in outcome.results[0].reply.text
    assert server.recorder.messages == []


async def test_outcomes_that_could_not_be_written_are_written_later_not_sent_again(
    runtime: Runtime, org: OrgFixture, server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database refuses the first write of outcomes (a restart). Before the fix the
    settler dropped them: the messages, already accepted by the server, stayed leased
    until expiry and went out a second time (flagged). Now the write is tried again."""
    await configure_server(runtime, org, server.port)
    ids = [(await enqueue(runtime, org, [f"w{i}@example.org"]))[0] for i in range(20)]
    real = SqlOutbox.settle
    refused = [0]

    async def settle_fails_first(self: SqlOutbox, *args: Any, **kwargs: Any) -> int:
        if not refused[0]:
            refused[0] += 1
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(SqlOutbox, "settle", settle_fails_first)
    # a lease short enough that a dropped outcome would be retried within the test
    policy = DeliveryPolicy(retry=FAST_RETRY, lease=timedelta(seconds=1), pause_after=3)

    async def all_sent() -> bool:
        async with runtime.uow() as uow:
            counts = await uow.outbox.counts(org.organization.id)
        return counts[MessageStatus.SENT] == len(ids)

    worker = make_worker(runtime, org, policy=policy)
    await run_until(worker, all_sent, limit=20)
    await asyncio.sleep(1.5)  # past the lease: a dropped outcome would be resent by now
    assert not len(worker.leases)

    assert refused[0] == 1
    received = collections.Counter(m.rcpt_tos[0] for m in server.recorder.messages)
    assert received == collections.Counter(f"w{i}@example.org" for i in range(20))
    async with runtime.uow() as uow:
        views = [await outbox.get_message(uow, org.principal, pk) for pk in ids]
    assert {v.status for v in views} == {MessageStatus.SENT}
    assert not any(v.possible_duplicate for v in views)
    assert {v.attempts for v in views} == {1}
