"""Apply bounces and complaints (``domain.delivery_events``) to an organization's outbox,
reports and suppression list: one function for every source (the mailbox reader, each
relay's webhook).

:func:`apply_events` matches each event to a message of the organization's outbox by its
candidate Message-IDs *and* to a recipient of that message; anything else is counted as
unmatched and changes nothing. Matched events are stored once (a repeated DSN or webhook
is a duplicate), recipients change state, and follow-up addresses are suppressed: at once
for a hard bounce, a complaint or a relay unsubscribe, after :data:`SOFT_BOUNCE_LIMIT` soft
bounces within :data:`SOFT_BOUNCE_WINDOW`. A notification's recipient (a colleague) is never
suppressed: the suppression list governs follow-ups to leads; the bounce shows in the
outbox instead. Addresses already on the list keep their first reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from visitmail.domain.delivery_events import (
    SOFT_BOUNCE_LIMIT,
    SOFT_BOUNCE_WINDOW,
    DeliveryEvent,
    DeliveryEventKind,
)
from visitmail.domain.delivery_reports import Severity, split_diagnostic
from visitmail.domain.follow_up import SuppressionReason
from visitmail.domain.identity import Principal
from visitmail.domain.outbox import MessageKind
from visitmail.domain.roles import Role
from visitmail.services.delivery_event_ports import (
    DeliveryEventUnitOfWork,
    MatchedEvent,
    SentMessage,
    StoredDeliveryEvent,
)
from visitmail.services.follow_up_ports import Refusal
from visitmail.services.identity import require_role


@dataclass(frozen=True, slots=True)
class AppliedEvents:
    """What :func:`apply_events` did: events stored now, repeats skipped, events that named
    no message (or no recipient) of the organization, addresses suppressed now."""

    applied: int
    duplicates: int
    unmatched: int
    suppressed: tuple[str, ...]


def _match(event: DeliveryEvent, sent: dict[str, SentMessage]) -> SentMessage | None:
    for candidate in event.message_ids:
        message = sent.get(candidate)
        if message is not None and event.address in message.recipients:
            return message
    return None


def _evidence(matched: MatchedEvent, note: str | None = None) -> Refusal:
    event = matched.event
    code, enhanced, text = split_diagnostic(event.diagnostic)
    text = text or {
        DeliveryEventKind.COMPLAINED: "the recipient marked the mail as spam",
        DeliveryEventKind.UNSUBSCRIBED: "unsubscribed at the relay",
    }.get(event.kind, "bounced")
    if note:
        text = f"{note}; last: {text}"
    return Refusal(
        code=code,
        enhanced=event.status or enhanced,
        text=text,
        outbox_id=matched.message.outbox_id,
        message_id=matched.message.message_id,
    )


_REASONS = {
    DeliveryEventKind.BOUNCED: SuppressionReason.BOUNCED,
    DeliveryEventKind.COMPLAINED: SuppressionReason.COMPLAINED,
    DeliveryEventKind.UNSUBSCRIBED: SuppressionReason.UNSUBSCRIBED,
}


async def apply_events(
    uow: DeliveryEventUnitOfWork,
    organization_id: UUID,
    events: Sequence[DeliveryEvent],
    *,
    now: datetime,
) -> AppliedEvents:
    """Apply ``events`` for one organization and commit (see the module docstring)."""
    if not events:
        return AppliedEvents(0, 0, 0, ())
    wanted = {candidate for e in events for candidate in e.message_ids}
    sent = await uow.delivery_events.sent_messages(organization_id, wanted)
    matched: list[MatchedEvent] = []
    unmatched = 0
    for event in events:
        message = _match(event, sent)
        if message is None:
            unmatched += 1
        else:
            matched.append(MatchedEvent(event, message))
    new = await uow.delivery_events.record(organization_id, matched, now)
    await uow.delivery_events.mark_recipients(
        organization_id, [m for m in new if m.event.recipient_state is not None], now
    )

    follow_ups = [m for m in new if m.message.kind is MessageKind.FOLLOW_UP]
    by_reason: dict[SuppressionReason, dict[str, Refusal]] = {}
    for m in follow_ups:
        if m.event.suppresses_now:
            reason = _REASONS[m.event.kind]
            by_reason.setdefault(reason, {}).setdefault(m.event.address, _evidence(m))
    soft = {
        m.event.address: m
        for m in follow_ups
        if m.event.kind is DeliveryEventKind.BOUNCED and m.event.severity is Severity.SOFT
    }
    if soft:
        counts = await uow.delivery_events.soft_bounces(
            organization_id, soft.keys(), now - SOFT_BOUNCE_WINDOW
        )
        for address, m in soft.items():
            count = counts.get(address, 0)
            if count >= SOFT_BOUNCE_LIMIT:
                days = SOFT_BOUNCE_WINDOW.days
                by_reason.setdefault(SuppressionReason.BOUNCED, {}).setdefault(
                    address, _evidence(m, f"{count} soft bounces in {days} days")
                )
    suppressed: list[str] = []
    for reason, refusals in by_reason.items():
        fresh = set(refusals) - await uow.suppressions.listed(organization_id, refusals.keys())
        await uow.suppressions.add_many(
            organization_id, refusals.keys(), reason, now, refusals=refusals
        )
        suppressed.extend(sorted(fresh))
    await uow.commit()
    return AppliedEvents(len(new), len(matched) - len(new), unmatched, tuple(suppressed))


# --- reading ------------------------------------------------------------------------------

READ_ROLE = Role.EVENT_CURATOR  # like the suppression list
RATE_WINDOW = timedelta(days=30)
# Gmail's and Yahoo's bulk-sender requirement: spam complaints under 0.3 %, ideally < 0.1 %.
SPAM_RATE_TARGET = 0.001


@dataclass(frozen=True, slots=True)
class DeliveryRates:
    """The last :data:`RATE_WINDOW` of an organization: what came back, against the
    messages accepted that the outbox still holds (its retention period, 30 days by
    default; notifications count too, as they do for Gmail). ``None`` rates before the
    first message was accepted."""

    messages_sent: int
    hard_bounces: int
    soft_bounces: int
    complaints: int

    @property
    def bounce_rate(self) -> float | None:
        sent = self.messages_sent
        return (self.hard_bounces + self.soft_bounces) / sent if sent else None

    @property
    def spam_rate(self) -> float | None:
        return self.complaints / self.messages_sent if self.messages_sent else None

    @property
    def spam_rate_too_high(self) -> bool:
        rate = self.spam_rate
        return rate is not None and rate >= SPAM_RATE_TARGET


async def recent_events(
    uow: DeliveryEventUnitOfWork, actor: Principal, *, limit: int = 20
) -> list[StoredDeliveryEvent]:
    """The organization's newest bounces, complaints and delays (event_curator and up)."""
    require_role(actor, READ_ROLE)
    return await uow.delivery_events.recent(actor.organization_id, min(max(limit, 1), 200))


async def rates(uow: DeliveryEventUnitOfWork, actor: Principal, *, now: datetime) -> DeliveryRates:
    """See :class:`DeliveryRates` (event_curator and up)."""
    require_role(actor, READ_ROLE)
    since = now - RATE_WINDOW
    counts = await uow.delivery_events.counts_since(actor.organization_id, since)
    sent = await uow.delivery_events.messages_sent(actor.organization_id)
    return DeliveryRates(
        messages_sent=sent,
        hard_bounces=counts.get("bounced_hard", 0),
        soft_bounces=counts.get("bounced_soft", 0),
        complaints=counts.get("complained", 0),
    )


async def report_events(
    uow: DeliveryEventUnitOfWork, organization_id: UUID, report_id: UUID
) -> list[StoredDeliveryEvent]:
    """A report's bounces and complaints (the caller has already shown the report)."""
    return await uow.delivery_events.for_report(organization_id, report_id)


async def message_events(
    uow: DeliveryEventUnitOfWork, organization_id: UUID, outbox_id: UUID
) -> list[StoredDeliveryEvent]:
    """An outbox message's bounces and complaints (the caller has already shown it)."""
    return await uow.delivery_events.for_message(organization_id, outbox_id)
