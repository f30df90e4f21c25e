"""The delivery engine against real SMTP servers (aiosmtpd), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from tests.support.orgs import OrgFixture
from tests.support.outbox import (
    ManualClock,
    configure_server,
    enqueue,
    make_worker,
    run_on_clock,
    run_until,
)
from tests.support.smtp_servers import Script, SmtpServer, start_smtp_server
from visitmail.domain.outbox import MessageStatus, RecipientStatus
from visitmail.domain.retry_policy import RetryPolicy
from visitmail.domain.smtp_settings import Security
from visitmail.runtime import Runtime
from visitmail.services.delivery import DeliveryPolicy

# minutes on a test's clock: 1, 2, 2, ... minutes apart, for at most 5 minutes
MINUTE_RETRY = RetryPolicy(
    base=timedelta(minutes=1), cap=timedelta(minutes=2), jitter=0, max_age=timedelta(minutes=5)
)


@pytest.fixture
async def server_factory() -> AsyncIterator[list[SmtpServer]]:
    servers: list[SmtpServer] = []
    yield servers
    for server in servers:
        await server.close()


async def view(runtime: Runtime, org: OrgFixture, message_pk):  # type: ignore[no-untyped-def]
    from visitmail.services import outbox

    async with runtime.uow() as uow:
        return await outbox.get_message(uow, org.principal, message_pk)


async def test_delivers_with_the_fixed_message_id_and_bytes(
    runtime: Runtime, org: OrgFixture, server_factory: list[SmtpServer]
) -> None:
    server = await start_smtp_server()
    server_factory.append(server)
    await configure_server(runtime, org, server.port)
    pk, message_id = await enqueue(runtime, org, ["lead@example.org", "boss@example.org"])

    await make_worker(runtime, org).run_until_idle()

    msg = await view(runtime, org, pk)
    assert msg.status is MessageStatus.SENT
    assert msg.sent_at is not None
    assert [r.status for r in msg.recipients] == [RecipientStatus.ACCEPTED] * 2
    assert [a.outcome for a in msg.attempt_log] == ["accepted", "accepted"]
    assert msg.attempt_log[0].code == 250
    (received,) = server.recorder.messages
    assert received.rcpt_tos == ["lead@example.org", "boss@example.org"]
    parsed = received.parsed()
    assert parsed["Message-ID"] == message_id
    assert "A line that starts with a dot." in parsed.get_content()
    assert "\r\n.\r\n" in parsed.get_content()  # the lone dot survived dot-stuffing


async def test_temporary_failure_is_retried_after_backoff(
    runtime: Runtime, org: OrgFixture, server_factory: list[SmtpServer]
) -> None:
    script = Script(data=lambda n: "451 4.3.0 Temporary local problem" if n == 1 else None)
    server = await start_smtp_server(script=script)
    server_factory.append(server)
    await configure_server(runtime, org, server.port)
    pk, message_id = await enqueue(runtime, org, ["lead@example.org"])

    # The worker's clock moves only when the test moves it, so the backoff is exact (it
    # used to be measured in wall time, and a slow flush made the gap look shorter).
    clock = ManualClock((await view(runtime, org, pk)).created_at)
    worker = make_worker(runtime, org, policy=DeliveryPolicy(retry=MINUTE_RETRY), clock=clock)

    async def final() -> bool:
        return (await view(runtime, org, pk)).status.final

    await run_on_clock(worker, clock, runtime, org, final)

    msg = await view(runtime, org, pk)
    assert msg.status is MessageStatus.SENT
    assert msg.attempts == 2
    assert [(a.outcome, a.code) for a in msg.attempt_log] == [("deferred", 451), ("accepted", 250)]
    assert msg.attempt_log[1].at - msg.attempt_log[0].at == timedelta(minutes=1)  # the backoff
    assert [m.parsed()["Message-ID"] for m in server.recorder.messages] == [message_id]


async def test_permanent_rejection_is_never_retried(
    runtime: Runtime, org: OrgFixture, server_factory: list[SmtpServer]
) -> None:
    script = Script(rcpt=lambda a: "550 5.1.1 <nobody@example.org>: user unknown")
    server = await start_smtp_server(script=script)
    server_factory.append(server)
    await configure_server(runtime, org, server.port)
    pk, _ = await enqueue(runtime, org, ["nobody@example.org"])

    await make_worker(runtime, org).run_until_idle()

    msg = await view(runtime, org, pk)
    assert msg.status is MessageStatus.FAILED
    assert msg.attempts == 1
    (recipient,) = msg.recipients
    assert recipient.status is RecipientStatus.REJECTED
    assert (recipient.code, recipient.enhanced) == (550, "5.1.1")
    assert "user unknown" in (recipient.text or "")
    assert server.recorder.commands.count("RCPT") == 1
    assert server.recorder.messages == []


async def test_temporary_failure_forever_expires(
    runtime: Runtime, org: OrgFixture, server_factory: list[SmtpServer]
) -> None:
    script = Script(rcpt=lambda a: "450 4.2.1 Mailbox busy, try later")
    server = await start_smtp_server(script=script)
    server_factory.append(server)
    await configure_server(runtime, org, server.port)
    pk, _ = await enqueue(runtime, org, ["busy@example.org"])
    # On the test's clock (it used to be a 600 ms wall-clock maximum age: a slow start made
    # the first attempt the last). Tries at 0, 1, 3 and 5 minutes; the next would be at 7,
    # past the 5-minute maximum age, so the fourth attempt expires the message.
    clock = ManualClock((await view(runtime, org, pk)).created_at)
    worker = make_worker(runtime, org, policy=DeliveryPolicy(retry=MINUTE_RETRY), clock=clock)

    async def final() -> bool:
        return (await view(runtime, org, pk)).status.final

    await run_on_clock(worker, clock, runtime, org, final)

    msg = await view(runtime, org, pk)
    assert msg.status is MessageStatus.EXPIRED
    assert msg.attempts == 4
    started = msg.attempt_log[0].at
    assert [a.at - started for a in msg.attempt_log] == [timedelta(minutes=m) for m in (0, 1, 3, 5)]
    assert all(a.outcome == "deferred" and a.code == 450 for a in msg.attempt_log)
    assert msg.recipients[0].status is RecipientStatus.DEFERRED


async def test_mixed_recipients_each_get_their_own_fate(
    runtime: Runtime, org: OrgFixture, server_factory: list[SmtpServer]
) -> None:
    replies = {
        "gone@example.org": "550 5.1.1 no such user",
        "later@example.org": "451 4.7.1 greylisted, try again",
    }
    script = Script(rcpt=replies.get)
    server = await start_smtp_server(script=script)
    server_factory.append(server)
    await configure_server(runtime, org, server.port)
    pk, _ = await enqueue(runtime, org, ["ok@example.org", "gone@example.org", "later@example.org"])
    slow = RetryPolicy(base=timedelta(minutes=10), jitter=0)

    await make_worker(runtime, org, policy=DeliveryPolicy(retry=slow)).run_until_idle()

    msg = await view(runtime, org, pk)
    assert {r.address: r.status for r in msg.recipients} == {
        "ok@example.org": RecipientStatus.ACCEPTED,
        "gone@example.org": RecipientStatus.REJECTED,
        "later@example.org": RecipientStatus.DEFERRED,
    }
    assert msg.status is MessageStatus.DEFERRED
    assert msg.not_before > msg.updated_at + timedelta(minutes=9)
    (received,) = server.recorder.messages
    assert received.rcpt_tos == ["ok@example.org"]


async def test_connection_lost_after_the_final_dot_is_retried_once_and_flagged(
    runtime: Runtime, org: OrgFixture, server_factory: list[SmtpServer]
) -> None:
    script = Script(drop_after_data=lambda n: n == 1)
    server = await start_smtp_server(script=script)
    server_factory.append(server)
    await configure_server(runtime, org, server.port)
    pk, message_id = await enqueue(runtime, org, ["lead@example.org"])

    await make_worker(runtime, org).run_until_idle()

    msg = await view(runtime, org, pk)
    assert msg.status is MessageStatus.SENT
    assert msg.possible_duplicate is True
    assert [a.outcome for a in msg.attempt_log] == ["unknown", "accepted"]
    # the server got it twice, with the same Message-ID: the receiver can deduplicate
    assert [m.parsed()["Message-ID"] for m in server.recorder.messages] == [message_id] * 2


async def test_idempotency_key_returns_the_first_message(runtime: Runtime, org: OrgFixture) -> None:
    first, _ = await enqueue(runtime, org, ["lead@example.org"], key="report-1:exported")
    second, _ = await enqueue(runtime, org, ["other@example.org"], key="report-1:exported")
    assert first == second
    msg = await view(runtime, org, first)
    assert [r.address for r in msg.recipients] == ["lead@example.org"]


async def test_auth_failures_pause_the_queue_until_a_probe_succeeds(
    runtime: Runtime, org: OrgFixture, server_factory: list[SmtpServer]
) -> None:
    from tests.support.smtp_servers import Certificates

    certs = Certificates.create()
    server = await start_smtp_server(
        security="starttls",
        cert=certs.trusted_leaf,
        credentials=("sales@example.com", "right-password"),
    )
    server_factory.append(server)
    await configure_server(
        runtime,
        org,
        server.port,
        security=Security.STARTTLS,
        username="sales@example.com",
        password="wrong-password",
        ca_pem=certs.trusted_ca_pem,
    )
    ids = [(await enqueue(runtime, org, [f"lead{i}@example.org"]))[0] for i in range(5)]

    worker = make_worker(runtime, org)
    await worker.run_until_idle(settle_seconds=0.5, limit=10)

    async with runtime.uow() as uow:
        health = await uow.health.get(org.organization.id)
    assert health is not None
    assert health.paused
    assert "535" in (health.paused_reason or "")
    statuses = {(await view(runtime, org, pk)).status for pk in ids}
    assert statuses <= {MessageStatus.DEFERRED, MessageStatus.QUEUED}
    assert server.recorder.messages == []
    assert "wrong-password" not in (health.paused_reason or "")

    # the admin fixes the password; the probe resumes the queue and everything goes out
    await configure_server(
        runtime,
        org,
        server.port,
        security=Security.STARTTLS,
        username="sales@example.com",
        password="right-password",
        ca_pem=certs.trusted_ca_pem,
    )

    async def all_sent() -> bool:
        return {(await view(runtime, org, pk)).status for pk in ids} == {MessageStatus.SENT}

    await run_until(make_worker(runtime, org), all_sent)
    async with runtime.uow() as uow:
        health = await uow.health.get(org.organization.id)
    assert health is not None
    assert not health.paused
    assert {(await view(runtime, org, pk)).status for pk in ids} == {MessageStatus.SENT}
    assert len(server.recorder.messages) == 5


async def test_messages_on_a_reused_connection_are_separated_by_rset(
    runtime: Runtime, org: OrgFixture, server_factory: list[SmtpServer]
) -> None:
    from visitmail.domain.smtp_settings import Limits

    server = await start_smtp_server()
    server_factory.append(server)
    await configure_server(
        runtime, org, server.port, limits=Limits(max_connections=1, max_messages_per_connection=10)
    )
    for i in range(3):
        await enqueue(runtime, org, [f"r{i}@example.org"])

    await make_worker(runtime, org, concurrency=1).run_until_idle()

    assert server.recorder.connections == 1
    assert len(server.recorder.messages) == 3
    transactions = [c for c in server.recorder.commands if c in ("RSET", "MAIL")]
    assert transactions == ["MAIL", "RSET", "MAIL", "RSET", "MAIL"]
