"""What the bounce mailbox needs from storage (``services.bounce_mailbox``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from visitmail.domain.bounce_mailbox import BounceMailbox, MailboxCursor, MailboxState
from visitmail.domain.network_policy import NetworkPolicy
from visitmail.domain.smtp_settings import SmtpSecrets, SmtpSettings
from visitmail.services.delivery_event_ports import DeliveryEventRepository
from visitmail.services.follow_up_ports import SuppressionRepository
from visitmail.services.ports import UnitOfWork


@dataclass(frozen=True, slots=True)
class StoredBounceMailbox:
    settings: BounceMailbox
    password_sealed: str | None  # its own password, sealed; None: signs in as SMTP does
    state: MailboxState
    updated_at: datetime


class BounceMailboxRepository(Protocol):
    async def get(self, organization_id: UUID) -> StoredBounceMailbox | None: ...

    async def put(
        self,
        organization_id: UUID,
        settings: BounceMailbox,
        password_sealed: str | None,
        now: datetime,
    ) -> None:
        """Create or replace the settings. The cursor is kept when the same folder of the
        same account on the same host is read; otherwise the next poll starts afresh."""
        ...

    async def delete(self, organization_id: UUID) -> bool: ...

    async def due(self, now: datetime, polled_before: datetime, limit: int) -> list[UUID]:
        """Enabled mailboxes last polled before ``polled_before`` (or never) whose poll
        lease is free at ``now``, the longest-waiting first."""
        ...

    async def claim(self, organization_id: UUID, now: datetime, until: datetime) -> bool:
        """Take the poll lease until ``until``; False if another worker holds it."""
        ...

    async def finish(
        self,
        organization_id: UUID,
        *,
        cursor: MailboxCursor | None,
        polled_at: datetime,
        error: str | None,
        found: int,
    ) -> None:
        """Record a poll (the new cursor, unless ``None``; the error or none; ``found``
        more reports) and free the lease."""
        ...

    async def organizations_with_password(self) -> list[UUID]:
        """Organizations whose mailbox has a password of its own (key rotation)."""
        ...

    async def sealed_passwords(self, organization_id: UUID) -> str | None:
        """The sealed password, for key rotation."""
        ...

    async def swap_password(self, organization_id: UUID, old: str, new: str) -> bool:
        """Replace the sealed password if it is still ``old`` (key rotation)."""
        ...


@dataclass(frozen=True, slots=True)
class MailboxLogin:
    """How a poll signs in. Never printed."""

    username: str
    password: str | None = None
    access_token: str | None = None

    def __repr__(self) -> str:
        return f"MailboxLogin(username={self.username!r})"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class FetchedMail:
    uid: int
    raw: bytes


@dataclass(frozen=True, slots=True)
class ReadBatch:
    cursor: MailboxCursor
    mails: tuple[FetchedMail, ...]
    looked_at: int
    messages_in_folder: int


class MailboxReader(Protocol):
    """Reads one poll's worth of mail (``adapters.imap.mailbox`` is one). Raises a
    :class:`VisitmailError` whose message says what failed and how to fix it."""

    async def __call__(
        self,
        mailbox: BounceMailbox,
        smtp: SmtpSettings,
        secrets: SmtpSecrets,
        login: MailboxLogin,
        *,
        policy: NetworkPolicy,
        cursor: MailboxCursor | None,
        now: datetime,
    ) -> ReadBatch: ...


class BounceUnitOfWork(UnitOfWork, Protocol):
    bounce_mailboxes: BounceMailboxRepository
    delivery_events: DeliveryEventRepository
    suppressions: SuppressionRepository
