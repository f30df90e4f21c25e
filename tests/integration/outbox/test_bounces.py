"""Bounces and complaints applied to a sent message, on SQLite and PostgreSQL: a follow-up
delivered through a real SMTP server (aiosmtpd), then the DSN / ARF report that came back,
parsed from real-world formats."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.integration.web.test_outbox_pages import log_in_as
from tests.integration.web.test_reports_api import capture, live_event
from tests.support.orgs import OrgFixture, new_org
from tests.support.outbox import configure_server, enqueue, make_worker
from tests.support.smtp_servers import SmtpServer, start_smtp_server
from visitmail.domain.delivery_events import (
    SOFT_BOUNCE_LIMIT,
    DeliveryEvent,
    DeliveryEventKind,
    EventSource,
    events_of_report,
)
from visitmail.domain.delivery_reports import Severity, read_report
from visitmail.domain.follow_up import SuppressionReason
from visitmail.domain.outbox import MessageKind, RecipientStatus
from visitmail.domain.roles import Role
from visitmail.runtime import Runtime
from visitmail.services import delivery_events, outbox

SAMPLES = Path(__file__).resolve().parents[2] / "unit" / "domain" / "reports_samples"
POSTFIX_ID = b"<0190c1f2-7d3e-7b4a-9f00-1c2d3e4f5a6b@acme.example>"
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    server = await start_smtp_server()
    yield server
    await server.close()


async def sent_follow_up(
    runtime: Runtime,
    org: OrgFixture,
    smtp: SmtpServer,
    to: str,
    report_id: uuid.UUID | None = None,
) -> tuple[uuid.UUID, str, uuid.UUID]:
    """A follow-up to ``to`` for a report (``report_id``, else a made-up one), delivered
    (the server said 250)."""
    await configure_server(runtime, org, smtp.port)
    report_id = report_id or uuid.uuid4()
    pk, message_id = await enqueue(
        runtime, org, [to], kind=MessageKind.FOLLOW_UP, meta={"report_id": str(report_id)}
    )
    await make_worker(runtime, org).run_until_idle()
    return pk, message_id, report_id


def postfix_bounce_for(message_id: str, address: str) -> bytes:
    raw = (SAMPLES / "postfix_bounce.eml").read_bytes()
    return (
        raw.replace(POSTFIX_ID, message_id.encode())
        .replace(b"nobody@fabrikam.example", address.encode())
        .replace(b"Nobody@Fabrikam.example", address.encode())
    )


def soft_bounce_for(message_id: str, address: str) -> bytes:
    """Postfix's DSN for a full mailbox (5.2.2): a soft bounce."""
    return (
        postfix_bounce_for(message_id, address)
        .replace(b"Status: 5.1.1", b"Status: 5.2.2")
        .replace(b"550 5.1.1", b"552 5.2.2")
        .replace(b"User unknown in local", b"Mailbox full in local")
    )


def events_of(raw: bytes, ref: str = "uid-1") -> list[DeliveryEvent]:
    report = read_report(raw)
    assert report is not None
    return events_of_report(report, source_ref=ref, received_at=NOW)


async def recipient(runtime: Runtime, org: OrgFixture, pk: uuid.UUID):  # type: ignore[no-untyped-def]
    async with runtime.uow() as uow:
        message = await outbox.get_message(uow, org.principal, pk)
    [only] = message.recipients
    return only


async def test_a_hard_bounce_marks_the_recipient_and_suppresses_the_address(
    runtime: Runtime, org: OrgFixture, smtp: SmtpServer
) -> None:
    pk, message_id, report_id = await sent_follow_up(runtime, org, smtp, "Lead@Fabrikam.example")
    assert (await recipient(runtime, org, pk)).status is RecipientStatus.ACCEPTED

    events = events_of(postfix_bounce_for(message_id, "lead@fabrikam.example"))
    async with runtime.uow() as uow:
        applied = await delivery_events.apply_events(uow, org.organization.id, events, now=NOW)
    assert (applied.applied, applied.duplicates, applied.unmatched) == (1, 0, 0)
    assert applied.suppressed == ("lead@fabrikam.example",)

    bounced = await recipient(runtime, org, pk)
    assert bounced.status is RecipientStatus.BOUNCED
    assert bounced.enhanced == "5.1.1"
    assert "User unknown in local recipient table" in (bounced.text or "")

    async with runtime.uow() as uow:
        entry = await uow.suppressions.get(org.organization.id, "lead@fabrikam.example")
        stored = await uow.delivery_events.for_report(org.organization.id, report_id)
    assert entry is not None and entry.reason is SuppressionReason.BOUNCED
    assert entry.refusal is not None
    assert entry.refusal.reply_line == (
        "550 5.1.1 <lead@fabrikam.example>: Recipient address rejected: User unknown in "
        "local recipient table"
    )
    assert (entry.refusal.outbox_id, entry.refusal.message_id) == (pk, message_id)
    assert [(e.kind, e.severity, e.outbox_id) for e in stored] == [("bounced", "hard", pk)]


async def test_the_same_report_twice_is_applied_once(
    runtime: Runtime, org: OrgFixture, smtp: SmtpServer
) -> None:
    _, message_id, report_id = await sent_follow_up(runtime, org, smtp, "lead@fabrikam.example")
    raw = postfix_bounce_for(message_id, "lead@fabrikam.example")
    async with runtime.uow() as uow:
        await delivery_events.apply_events(uow, org.organization.id, events_of(raw), now=NOW)
    async with runtime.uow() as uow:
        again = await delivery_events.apply_events(
            uow, org.organization.id, events_of(raw), now=NOW
        )
    assert (again.applied, again.duplicates, again.suppressed) == (0, 1, ())
    async with runtime.uow() as uow:
        assert len(await uow.delivery_events.for_report(org.organization.id, report_id)) == 1


async def test_a_report_for_another_organizations_mail_changes_nothing(
    runtime: Runtime, org: OrgFixture, smtp: SmtpServer
) -> None:
    pk, message_id, _ = await sent_follow_up(runtime, org, smtp, "lead@fabrikam.example")
    other = await new_org(runtime)
    raw = postfix_bounce_for(message_id, "lead@fabrikam.example")
    async with runtime.uow() as uow:
        applied = await delivery_events.apply_events(
            uow, other.organization.id, events_of(raw), now=NOW
        )
    assert (applied.applied, applied.unmatched) == (0, 1)
    assert (await recipient(runtime, org, pk)).status is RecipientStatus.ACCEPTED
    async with runtime.uow() as uow:
        assert await uow.suppressions.get(other.organization.id, "lead@fabrikam.example") is None


async def test_a_bounce_for_an_address_the_message_was_not_sent_to_is_unmatched(
    runtime: Runtime, org: OrgFixture, smtp: SmtpServer
) -> None:
    _, message_id, _ = await sent_follow_up(runtime, org, smtp, "lead@fabrikam.example")
    raw = postfix_bounce_for(message_id, "someone-else@fabrikam.example")
    async with runtime.uow() as uow:
        applied = await delivery_events.apply_events(
            uow, org.organization.id, events_of(raw), now=NOW
        )
    assert (applied.applied, applied.unmatched, applied.suppressed) == (0, 1, ())


async def test_soft_bounces_suppress_only_at_the_limit(
    runtime: Runtime, org: OrgFixture, smtp: SmtpServer
) -> None:
    address = "full@fabrikam.example"
    for n in range(1, SOFT_BOUNCE_LIMIT + 1):
        pk, message_id, _ = await sent_follow_up(runtime, org, smtp, address)
        raw = soft_bounce_for(message_id, address)
        [event] = events_of(raw, ref=f"uid-{n}")
        assert event.severity is Severity.SOFT
        async with runtime.uow() as uow:
            applied = await delivery_events.apply_events(
                uow, org.organization.id, [event], now=NOW + timedelta(days=n)
            )
        assert (await recipient(runtime, org, pk)).status is RecipientStatus.BOUNCED
        if n < SOFT_BOUNCE_LIMIT:
            assert applied.suppressed == ()
    assert applied.suppressed == (address,)
    async with runtime.uow() as uow:
        entry = await uow.suppressions.get(org.organization.id, address)
    assert entry is not None and entry.refusal is not None
    assert entry.refusal.text.startswith(f"{SOFT_BOUNCE_LIMIT} soft bounces in 30 days; last:")


async def test_a_complaint_suppresses_and_marks_the_recipient(
    runtime: Runtime, org: OrgFixture, smtp: SmtpServer
) -> None:
    pk, message_id, _ = await sent_follow_up(runtime, org, smtp, "user@example.com")
    raw = (
        (SAMPLES / "arf_complaint.eml")
        .read_bytes()
        .replace(b"<0190c1f5-2222-7000-8000-000000002222@acme.example>", message_id.encode())
    )
    [event] = events_of(raw)
    assert event.kind is DeliveryEventKind.COMPLAINED
    async with runtime.uow() as uow:
        applied = await delivery_events.apply_events(uow, org.organization.id, [event], now=NOW)
    assert applied.suppressed == ("user@example.com",)
    assert (await recipient(runtime, org, pk)).status is RecipientStatus.COMPLAINED
    async with runtime.uow() as uow:
        entry = await uow.suppressions.get(org.organization.id, "user@example.com")
    assert entry is not None and entry.reason is SuppressionReason.COMPLAINED


async def test_a_colleagues_bounce_shows_but_is_not_suppressed(
    runtime: Runtime, org: OrgFixture, smtp: SmtpServer
) -> None:
    await configure_server(runtime, org, smtp.port)
    pk, message_id = await enqueue(runtime, org, ["team@fabrikam.example"])
    await make_worker(runtime, org).run_until_idle()
    events = events_of(postfix_bounce_for(message_id, "team@fabrikam.example"))
    async with runtime.uow() as uow:
        applied = await delivery_events.apply_events(uow, org.organization.id, events, now=NOW)
    assert (applied.applied, applied.suppressed) == (1, ())
    assert (await recipient(runtime, org, pk)).status is RecipientStatus.BOUNCED


async def test_a_relay_event_for_a_queued_recipient_leaves_its_state(
    runtime: Runtime, org: OrgFixture
) -> None:
    # Never delivered (no server configured): a bounce cannot overtake the outbox.
    pk, message_id = await enqueue(
        runtime, org, ["lead@fabrikam.example"], kind=MessageKind.FOLLOW_UP
    )
    event = DeliveryEvent(
        source=EventSource.SENDGRID,
        source_ref="sg-event-1",
        kind=DeliveryEventKind.BOUNCED,
        address="lead@fabrikam.example",
        message_ids=(message_id,),
        occurred_at=NOW,
        severity=Severity.HARD,
        status="5.1.1",
        diagnostic="550 5.1.1 unknown",
    )
    async with runtime.uow() as uow:
        applied = await delivery_events.apply_events(uow, org.organization.id, [event], now=NOW)
    assert applied.applied == 1
    assert (await recipient(runtime, org, pk)).status is RecipientStatus.PENDING
    async with runtime.uow() as uow:
        entry = await uow.suppressions.get(org.organization.id, "lead@fabrikam.example")
    assert entry is not None and entry.reason is SuppressionReason.BOUNCED


async def test_the_report_and_the_outbox_show_what_came_back(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, smtp: SmtpServer
) -> None:
    event_ = await live_event(client, org)
    report_id = (await capture(client, org.headers, event_["id"]))["id"]
    pk, message_id, _ = await sent_follow_up(
        runtime, org, smtp, "lead@fabrikam.example", uuid.UUID(report_id)
    )
    events = events_of(postfix_bounce_for(message_id, "lead@fabrikam.example"))
    async with runtime.uow() as uow:
        await delivery_events.apply_events(uow, org.organization.id, events, now=NOW)

    await log_in_as(client, runtime, org, Role.ADMIN)
    report = (await client.get(f"/reports/{report_id}")).text
    assert 'id="undeliverable"' in report and "Email undeliverable" in report
    assert "the address does not exist" in report
    assert "User unknown in local recipient table" in report
    message = (await client.get(f"/outbox/{pk}")).text
    assert "Reported after the server accepted it" in message
    assert 'class="badge rcpt-bounced"' in message
    listed = (await client.get("/suppressions")).text
    assert "The bounce said: <code>550 5.1.1 &lt;lead@fabrikam.example&gt;" in listed


async def test_a_soft_bounce_on_the_report_is_not_called_undeliverable(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, smtp: SmtpServer
) -> None:
    event_ = await live_event(client, org)
    report_id = (await capture(client, org.headers, event_["id"]))["id"]
    _, message_id, _ = await sent_follow_up(
        runtime, org, smtp, "full@fabrikam.example", uuid.UUID(report_id)
    )
    raw = soft_bounce_for(message_id, "full@fabrikam.example")
    async with runtime.uow() as uow:
        await delivery_events.apply_events(uow, org.organization.id, events_of(raw), now=NOW)
    await log_in_as(client, runtime, org, Role.ADMIN)
    report = (await client.get(f"/reports/{report_id}")).text
    assert "An email bounced temporarily" in report and "Email undeliverable" not in report
    assert re.search(r"full@fabrikam.example</strong>:\s+bounced temporarily\s+on", report)


async def test_metrics_count_what_came_back_per_organization(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, smtp: SmtpServer
) -> None:
    from tests.integration.web.test_messages_api import samples

    _, message_id, _ = await sent_follow_up(runtime, org, smtp, "lead@fabrikam.example")
    events = events_of(postfix_bounce_for(message_id, "lead@fabrikam.example"))
    async with runtime.uow() as uow:
        await delivery_events.apply_events(uow, org.organization.id, events, now=datetime.now(UTC))
    complaint = (
        (SAMPLES / "arf_complaint.eml")
        .read_bytes()
        .replace(b"<0190c1f5-2222-7000-8000-000000002222@acme.example>", message_id.encode())
        .replace(b"User@example.com", b"lead@fabrikam.example")
    )
    async with runtime.uow() as uow:
        await delivery_events.apply_events(
            uow, org.organization.id, events_of(complaint, ref="uid-2"), now=datetime.now(UTC)
        )
    found = samples((await client.get("/metrics")).text)
    org_label = ("organization", str(org.organization.id))
    assert found[("visitmail_delivery_events_30d", (("kind", "bounced_hard"), org_label))] == 1
    assert found[("visitmail_delivery_events_30d", (("kind", "complained"), org_label))] == 1
    # One complaint per one message accepted.
    assert found[("visitmail_complaint_rate_30d", (org_label,))] == 1.0


async def test_the_dashboard_counts_bounces_and_complaints(
    client: httpx.AsyncClient, runtime: Runtime, org: OrgFixture, smtp: SmtpServer
) -> None:
    await log_in_as(client, runtime, org, Role.ADMIN)
    assert "bounces-heading" not in (await client.get("/")).text
    _, message_id, _ = await sent_follow_up(runtime, org, smtp, "lead@fabrikam.example")
    events = events_of(postfix_bounce_for(message_id, "lead@fabrikam.example"))
    async with runtime.uow() as uow:
        await delivery_events.apply_events(uow, org.organization.id, events, now=datetime.now(UTC))
    page = (await client.get("/")).text
    assert 'data-bounces="1"' in page and 'data-complaints="0"' in page
    assert "1 address did not exist" in page
