"""What applying bounces and complaints needs from storage (``services.delivery_events``)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from visitmail.domain.delivery_events import DeliveryEvent
from visitmail.domain.outbox import MessageKind
from visitmail.services.follow_up_ports import SuppressionRepository


@dataclass(frozen=True, slots=True)
class SentMessage:
    """An outbox message of the organization, as an event is matched against it."""

    outbox_id: UUID
    message_id: str
    kind: MessageKind
    report_id: UUID | None
    recipients: frozenset[str]  # lower-cased


@dataclass(frozen=True, slots=True)
class MatchedEvent:
    event: DeliveryEvent
    message: SentMessage


@dataclass(frozen=True, slots=True)
class StoredDeliveryEvent:
    """An applied event as pages and the API show it."""

    id: UUID
    kind: str
    severity: str | None
    source: str
    address: str
    outbox_id: UUID
    report_id: UUID | None
    status: str | None
    diagnostic: str
    occurred_at: datetime


class DeliveryEventRepository(Protocol):
    async def sent_messages(
        self, organization_id: UUID, message_ids: Collection[str]
    ) -> dict[str, SentMessage]:
        """The organization's outbox messages among ``message_ids`` (RFC 5322 ids), by id."""
        ...

    async def record(
        self, organization_id: UUID, matched: Sequence[MatchedEvent], received_at: datetime
    ) -> list[MatchedEvent]:
        """Store the events; those stored before (same source, reference and address) are
        skipped. Returns the ones stored now, in order."""
        ...

    async def mark_recipients(
        self, organization_id: UUID, matched: Sequence[MatchedEvent], now: datetime
    ) -> None:
        """Set each event's recipient to its :attr:`DeliveryEvent.recipient_state` with the
        status and diagnostic: a bounce only after ``accepted``, a complaint after
        ``accepted`` or ``bounced``; other states stay."""
        ...

    async def soft_bounces(
        self, organization_id: UUID, addresses: Collection[str], since: datetime
    ) -> dict[str, int]:
        """How many soft bounces each address had since ``since`` (missing: none)."""
        ...

    async def for_report(self, organization_id: UUID, report_id: UUID) -> list[StoredDeliveryEvent]:
        """The report's events (its follow-ups' and notifications'), newest first."""
        ...

    async def recent(self, organization_id: UUID, limit: int) -> list[StoredDeliveryEvent]:
        """The newest events received, newest first."""
        ...

    async def counts_since(self, organization_id: UUID, since: datetime) -> dict[str, int]:
        """Events received since ``since`` by ``kind`` (bounces as ``bounced_hard`` /
        ``bounced_soft``)."""
        ...

    async def messages_sent(self, organization_id: UUID) -> int:
        """Messages the server accepted (status ``sent``) that the outbox still holds (the
        retention period: 30 days by default)."""
        ...

    async def for_message(
        self, organization_id: UUID, outbox_id: UUID
    ) -> list[StoredDeliveryEvent]:
        """One outbox message's events, newest first."""
        ...


class DeliveryEventUnitOfWork(Protocol):
    delivery_events: DeliveryEventRepository
    suppressions: SuppressionRepository

    async def commit(self) -> None: ...
