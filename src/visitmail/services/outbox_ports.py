"""Ports of the outbox and the delivery engine; ``adapters/db`` and ``adapters/smtp``
implement them. Payloads are typed values, never loose dicts."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol
from uuid import UUID

from visitmail.domain.outbox import (
    AttemptOutcome,
    MessageKind,
    MessageStatus,
    RecipientStatus,
    Settlement,
)
from visitmail.domain.reply_advice import ReplyAdvice, advise_stored
from visitmail.domain.smtp_replies import reply_line, reply_text_shown
from visitmail.domain.smtp_settings import Limits, SmtpSecrets, SmtpSettings


@dataclass(frozen=True, slots=True)
class NewRecipient:
    address: str
    role: str = "to"  # to | cc | bcc (bcc is in the envelope only, never in the headers)


@dataclass(frozen=True, slots=True)
class NewMessage:
    organization_id: UUID
    kind: MessageKind
    idempotency_key: str
    message_id: str  # the RFC 5322 Message-ID, fixed now, the same on every retry
    mail_from: str  # the envelope sender
    subject: str
    mime: bytes  # rendered once
    recipients: Sequence[NewRecipient]
    priority: int = 0
    not_before: datetime | None = None
    expires_at: datetime | None = None
    meta: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Enqueued:
    id: UUID
    created: bool  # False: the idempotency key existed; this is the first message


@dataclass(frozen=True, slots=True)
class ClaimedMessage:
    """A leased message, with what one delivery attempt needs."""

    id: UUID
    organization_id: UUID
    message_id: str
    mail_from: str
    mime: bytes
    open_recipients: list[str]
    accepted_before: int
    attempt: int  # 1 for the first attempt
    created_at: datetime
    expires_at: datetime | None
    possible_duplicate: bool
    kind: MessageKind = MessageKind.NOTIFICATION
    meta: Mapping[str, str] = field(default_factory=dict)  # e.g. a webhook's secret_ref


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    recipient: str | None
    outcome: str  # accepted | deferred | rejected | unknown | server_failure
    code: int | None
    enhanced: str | None
    text: str | None
    duration_ms: int


@dataclass(frozen=True, slots=True)
class SettledMessage:
    message: ClaimedMessage
    settlement: Settlement
    attempts: Sequence[AttemptRecord]


class _ShownReply:
    """How a stored server reply (``code``, ``enhanced``, ``text``) reads on a page: one
    rule for a recipient's last reply and for an attempt's."""

    __slots__ = ()
    code: int | None
    enhanced: str | None
    text: str | None

    @property
    def advice(self) -> ReplyAdvice | None:
        """What the server's reply means and its fix (``domain.reply_advice``)."""
        return advise_stored(self.code, self.enhanced, self.text)

    @property
    def reply_line(self) -> str:
        """The reply as shown: code, enhanced status and text, each once."""
        return reply_line(self.code, self.enhanced, self.text)

    @property
    def text_shown(self) -> str:
        """The text without a leading repeat of the enhanced status."""
        return reply_text_shown(self.enhanced, self.text)


@dataclass(frozen=True, slots=True)
class RecipientView(_ShownReply):
    address: str
    role: str
    status: RecipientStatus
    code: int | None
    enhanced: str | None
    text: str | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class AttemptView(_ShownReply):
    at: datetime
    recipient: str | None
    outcome: str
    code: int | None
    enhanced: str | None
    text: str | None
    duration_ms: int


@dataclass(frozen=True, slots=True)
class MessageView:
    id: UUID
    kind: MessageKind
    status: MessageStatus
    message_id: str
    mail_from: str
    subject: str
    size: int
    priority: int
    attempts: int
    not_before: datetime
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    possible_duplicate: bool
    last_error: str | None
    idempotency_key: str
    recipients: list[RecipientView] = field(default_factory=list)
    attempt_log: list[AttemptView] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ServerHealth:
    organization_id: UUID
    consecutive_failures: int
    paused_at: datetime | None
    paused_reason: str | None
    next_probe_at: datetime | None
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_failure: str | None

    @property
    def paused(self) -> bool:
        return self.paused_at is not None

    @property
    def advice(self) -> ReplyAdvice | None:
        """What the server's reply behind the pause (or the last failure) means, and its
        fix (``domain.reply_advice``)."""
        return advise_stored(None, None, self.paused_reason or self.last_failure)


class OutboxRepository(Protocol):
    async def enqueue(self, message: NewMessage, now: datetime) -> Enqueued:
        """Insert in the caller's transaction; an existing idempotency key returns the
        first message instead (``created=False``)."""
        ...

    async def enqueue_many(self, messages: Sequence[NewMessage], now: datetime) -> list[Enqueued]:
        """:meth:`enqueue` for many messages with a constant number of multi-row statements;
        one result per message, in order. A key that exists (or repeats in ``messages``)
        answers the first message with ``created=False``."""
        ...

    async def claim(
        self,
        worker: str,
        limit: int,
        lease: timedelta,
        now: datetime,
        organizations: frozenset[UUID] | None = None,
    ) -> list[ClaimedMessage]:
        """Lease up to ``limit`` due messages of organizations that are not paused, and
        messages whose lease expired (their worker died: flagged as possible duplicates).
        ``organizations`` restricts the claim (dedicated workers)."""
        ...

    async def has_due(
        self, now: datetime, organizations: frozenset[UUID] | None = None
    ) -> bool: ...

    async def settle(self, worker: str, items: Sequence[SettledMessage], now: datetime) -> int:
        """Write outcomes of messages this worker still leases; returns how many were
        written (a message whose lease was lost is left to its new owner)."""
        ...

    async def release(
        self, worker: str, ids: Sequence[UUID], now: datetime, not_before: datetime | None = None
    ) -> None:
        """Give leased messages back unchanged (shutdown, rate limit), attempt not counted."""
        ...

    async def extend_leases(self, worker: str, ids: Sequence[UUID], until: datetime) -> set[UUID]:
        """Move the leases this worker holds among ``ids`` to ``until``; returns the ids
        extended. Never waits for a message another transaction is writing (its settlement
        or release is under way): that one is skipped this time and keeps its expiry."""
        ...

    async def list(
        self,
        organization_id: UUID,
        *,
        status: MessageStatus | None,
        kind: MessageKind | None,
        limit: int,
        offset: int,
    ) -> list[MessageView]: ...

    async def get(self, organization_id: UUID, message_id: UUID) -> MessageView | None: ...

    async def owned_message_ids(
        self, organization_id: UUID, message_ids: Collection[str]
    ) -> set[str]:
        """Which of these RFC 5322 Message-IDs (exact strings, ``<local@domain>``) are on
        this organization's messages, whatever their status; never another's."""
        ...

    async def retry(self, organization_id: UUID, message_id: UUID, now: datetime) -> bool: ...

    async def cancel(self, organization_id: UUID, message_id: UUID, now: datetime) -> bool: ...

    async def counts(self, organization_id: UUID | None) -> dict[MessageStatus, int]: ...

    async def purge(self, finished_before: datetime) -> int: ...


class HealthRepository(Protocol):
    async def get(self, organization_id: UUID) -> ServerHealth | None: ...

    async def record_successes(self, organization_ids: Sequence[UUID], now: datetime) -> None: ...

    async def record_failure(
        self,
        organization_id: UUID,
        reason: str,
        now: datetime,
        *,
        pause_after: int,
        probe_in: timedelta,
    ) -> ServerHealth:
        """Count one more consecutive failure; pause at ``pause_after``."""
        ...

    async def due_probes(self, now: datetime) -> list[UUID]: ...

    async def probe_failed(self, organization_id: UUID, reason: str, next_at: datetime) -> None: ...

    async def resume(self, organization_id: UUID, now: datetime) -> None: ...

    async def schedule_probe(self, organization_id: UUID, now: datetime) -> None:
        """Probe a paused organization right away (e.g. its settings changed)."""
        ...


@dataclass(frozen=True, slots=True)
class RecipientGrant:
    """Recipients granted under ``recipients_per_day``, and when the day's window restarts
    (the budget is whole again): the time to wait for when fewer than needed came."""

    granted: int
    refill_at: datetime


class RateLimiter(Protocol):
    async def take(self, organization_id: UUID, limits: Limits, want: int, now: datetime) -> int:
        """Grant up to ``want`` sends now under the server's limits, shared by every worker;
        0 when the budget is spent. Workers take several at once and keep them for the
        messages they hold (one transaction per batch, not per message)."""
        ...

    async def take_recipients(
        self, organization_id: UUID, limits: Limits, want: int, now: datetime
    ) -> RecipientGrant:
        """Grant up to ``want`` recipients now under ``limits.recipients_per_day`` (a
        message to 3 recipients needs 3), shared by every worker, in the same day window
        as ``per_day``; everything is granted without that limit."""
        ...

    async def give_back(
        self, organization_id: UUID, limits: Limits, unused: int, *, recipients: int = 0
    ) -> None:
        """Return sends granted by :meth:`take` (and ``recipients`` granted by
        :meth:`take_recipients`) that were not used (the messages went back to the queue),
        so other workers may use them; never above the budget's cap."""
        ...

    async def slow_down(self, organization_id: UUID, now: datetime) -> None:
        """The server throttled us: halve the rate for a while."""
        ...


class MessageTransport(Protocol):
    """Delivers messages over pooled connections to one organization's server."""

    async def send(
        self,
        organization_id: UUID,
        settings: SmtpSettings,
        secrets: SmtpSecrets,
        message: ClaimedMessage,
        *,
        following: ClaimedMessage | None = None,
    ) -> AttemptOutcome:
        """One attempt. Never raises for server behaviour: failures are outcomes.
        ``following``: the message the caller sends next to this organization's server,
        with no other send for it in between (the transport may prepare its envelope on
        the same connection); if it will not be sent after all, the caller says
        :meth:`forget`."""
        ...

    def forget(self, message_id: UUID) -> None:
        """A message named as ``following`` will not be sent: drop what was prepared."""
        ...

    async def probe(
        self, organization_id: UUID, settings: SmtpSettings, secrets: SmtpSecrets
    ) -> str | None:
        """Connect and authenticate; ``None`` if fine, else the reason."""
        ...

    def abort(self) -> None:
        """Shutdown ran out of time: end every conversation now and start no new one. A
        ``send`` in progress returns promptly: a server failure if the message's final
        ``.`` had not been written (nothing delivered), the unknown outcome if it had."""
        ...

    async def close(self) -> None: ...


class OutboxUnitOfWork(Protocol):
    """One transaction with the outbox's repositories (the SQL unit of work has them all)."""

    outbox: OutboxRepository
    health: HealthRepository
    rates: RateLimiter

    async def commit(self) -> None: ...
