"""Ports of the follow-up use cases; ``adapters/db/follow_up_repo.py`` implements the
repositories, ``adapters/render/mime.py`` the :class:`MailRenderer`, and the web layer the
:class:`UnsubscribeLinks`. Every repository method takes the organization id and never
reads or writes another organization's rows.

The send path is set-based: every method that takes a collection answers it with one
query (or one multi-row statement), whatever its size, and is served by an index, so a
chunk of follow-ups costs a constant number of statements and nothing grows with the
size of the outbox or of the report table."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from visitmail.domain.events import Event, MediaItem
from visitmail.domain.follow_up import (
    FollowUpStatus,
    FollowUpTemplate,
    FollowUpTemplateSpec,
    SuppressionReason,
)
from visitmail.domain.mail import BuiltMessage, MailSpec
from visitmail.domain.reports import Report
from visitmail.domain.smtp_replies import reply_line
from visitmail.services.dkim_ports import DkimKeyRepository
from visitmail.services.outbox_ports import OutboxUnitOfWork
from visitmail.services.ports import AuditEntry, OrganizationRepository, SmtpSettingsRepository
from visitmail.services.report_ports import ReportsUnitOfWork


class MailRenderer(Protocol):
    def __call__(self, spec: MailSpec) -> BuiltMessage:
        """The MIME bytes of ``spec`` (rendered once; the outbox stores them)."""
        ...


class UnsubscribeLinks(Protocol):
    def url(self, organization_id: UUID, address: str, language: str) -> str:
        """The absolute one-click URL (RFC 8058) that suppresses ``address``; its page
        speaks ``language`` (the follow-up's)."""
        ...


@dataclass(frozen=True, slots=True)
class Refusal:
    """A server's permanent refusal of an address as a follow-up's ``to`` recipient: the
    evidence kept with a ``rejected`` suppression (or a ``bounced`` / ``complained`` one:
    the report's diagnostic). ``outbox_id`` is the follow-up's outbox
    message, ``message_id`` its RFC 5322 Message-ID (both None if unknown)."""

    code: int | None  # None: a bounce or complaint whose report named no reply code
    enhanced: str | None
    text: str
    outbox_id: UUID | None = None
    message_id: str | None = None

    @property
    def reply_line(self) -> str:
        """The refusal as shown: code, enhanced status and text, each once."""
        return reply_line(self.code, self.enhanced, self.text)


@dataclass(frozen=True, slots=True)
class Suppression:
    """An address on the list and why: ``created_by`` (and the user's name) and ``note``
    for one added by hand; ``refusal`` for ``rejected``."""

    address: str
    reason: SuppressionReason
    created_at: datetime
    created_by: UUID | None = None
    created_by_name: str | None = None
    note: str | None = None
    refusal: Refusal | None = None


@dataclass(frozen=True, slots=True)
class SuppressionPage:
    """One page of the list, newest first, and how many entries match in all."""

    items: Sequence[Suppression]
    total: int


@dataclass(frozen=True, slots=True)
class FollowUpSend:
    id: UUID
    report_id: UUID
    template_id: UUID
    sequence: int | None  # 1, 2, … for queued sends; None for suppressed ones
    status: FollowUpStatus
    outbox_id: UUID | None
    address: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewFollowUpSend:
    """A send to record: queued (``sequence`` 1, 2, …, with its ``outbox_id``) or
    suppressed (``sequence`` and ``outbox_id`` None)."""

    report_id: UUID
    template_id: UUID
    sequence: int | None
    status: FollowUpStatus
    outbox_id: UUID | None
    address: str


class FollowUpSources(Protocol):
    """What a chunk of follow-ups reads besides the follow-up tables, each in one query."""

    async def reports(
        self, organization_id: UUID, report_ids: Collection[UUID]
    ) -> dict[UUID, Report]:
        """The organization's reports among ``report_ids`` (others are left out), each with
        ``reporter`` (name, email of the capturing user) filled in."""
        ...

    async def events(
        self, organization_id: UUID, event_ids: Collection[UUID]
    ) -> dict[UUID, Event]: ...

    async def media(
        self, organization_id: UUID, media_ids: Collection[UUID]
    ) -> dict[UUID, tuple[MediaItem, bytes]]:
        """Media files with their bytes; a deleted one is left out."""
        ...


class FollowUpTemplateRepository(Protocol):
    async def get(
        self, organization_id: UUID, event_id: UUID, language: str
    ) -> FollowUpTemplate | None: ...

    async def list(self, organization_id: UUID, event_id: UUID) -> Sequence[FollowUpTemplate]:
        """Ordered by language."""
        ...

    async def for_events(
        self, organization_id: UUID, event_ids: Collection[UUID]
    ) -> Sequence[FollowUpTemplate]:
        """Every template of these events."""
        ...

    async def put(
        self,
        organization_id: UUID,
        event_id: UUID,
        language: str,
        spec: FollowUpTemplateSpec,
        *,
        actor_id: UUID | None,
        now: datetime,
    ) -> FollowUpTemplate:
        """Insert, or replace the spec of the existing template (its id stays, so what was
        sent with it still counts as sent)."""
        ...


class SuppressionRepository(Protocol):
    """The organization's suppression list. Addresses are stored lower-cased; every method
    lower-cases what it is given."""

    async def get(self, organization_id: UUID, address: str) -> Suppression | None: ...

    async def add(
        self,
        organization_id: UUID,
        address: str,
        reason: SuppressionReason,
        now: datetime,
        *,
        created_by: UUID | None = None,
        note: str | None = None,
    ) -> bool:
        """True if the address was added; False if it was already on the list (a
        concurrent add included: the first one wins, nothing is overwritten)."""
        ...

    async def listed(self, organization_id: UUID, addresses: Collection[str]) -> set[str]:
        """Those of ``addresses`` (lower-cased) that are on the list."""
        ...

    async def rejected_among(
        self, organization_id: UUID, addresses: Collection[str]
    ) -> dict[str, Refusal]:
        """Those of ``addresses`` (lower-cased) that a server permanently refused (5xx)
        as the ``to`` recipient of an earlier follow-up in the outbox with a reply about
        the address itself (``domain.smtp_replies.rejects_the_address``), each with the
        newest such reply. A refusal from before the address's latest lift (:meth:`remove`)
        does not count."""
        ...

    async def add_many(
        self,
        organization_id: UUID,
        addresses: Collection[str],
        reason: SuppressionReason,
        now: datetime,
        *,
        refusals: Mapping[str, Refusal] | None = None,
    ) -> None:
        """Put the addresses (lower-cased) on the list, each with its refusal from
        ``refusals`` if there is one; those already there keep theirs."""
        ...

    async def page(
        self, organization_id: UUID, *, search: str | None, limit: int, offset: int
    ) -> SuppressionPage:
        """Entries whose address contains ``search`` (case-insensitive, taken literally:
        ``%`` and ``_`` are no wildcards), newest first (then by address)."""
        ...

    async def remove(
        self, organization_id: UUID, address: str, *, actor_id: UUID | None, now: datetime
    ) -> bool:
        """Take the address off the list and record ``now`` as its latest lift; False (and
        nothing recorded) if it was not on the list."""
        ...

    async def history(self, organization_id: UUID, *, limit: int) -> Sequence[AuditEntry]:
        """The organization's suppression-list audit entries (``suppression.*``), newest
        first."""
        ...


class FollowUpSendRepository(Protocol):
    async def sent(
        self, organization_id: UUID, report_id: UUID, template_id: UUID
    ) -> Sequence[FollowUpSend]:
        """The queued sends of this template to this report's lead, oldest first."""
        ...

    async def record(
        self,
        organization_id: UUID,
        *,
        report_id: UUID,
        template_id: UUID,
        sequence: int | None,
        status: FollowUpStatus,
        outbox_id: UUID | None,
        address: str,
        actor_id: UUID | None,
        now: datetime,
    ) -> FollowUpSend: ...

    async def queued_for(
        self, organization_id: UUID, report_ids: Collection[UUID]
    ) -> Sequence[FollowUpSend]:
        """The queued sends of any template to these reports' leads, ordered by report,
        template and sequence."""
        ...

    async def record_many(
        self,
        organization_id: UUID,
        sends: Sequence[NewFollowUpSend],
        *,
        actor_id: UUID | None,
        now: datetime,
    ) -> None: ...


class FollowUpUnitOfWork(ReportsUnitOfWork, OutboxUnitOfWork, Protocol):
    """One transaction with reports, the outbox, SMTP settings and the follow-up tables
    (the SQL unit of work has them all)."""

    smtp_settings: SmtpSettingsRepository
    organizations: OrganizationRepository
    follow_up_templates: FollowUpTemplateRepository
    suppressions: SuppressionRepository
    follow_up_sends: FollowUpSendRepository
    follow_up_sources: FollowUpSources
    dkim_keys: DkimKeyRepository
