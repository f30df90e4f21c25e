"""Ports of events, their media library and visit reports; ``adapters/db/report_repos.py``
implements the repositories. Every method takes the organization id and never reads or
writes another organization's rows.

:class:`ReportTriggers` is the hook through which exporting or checking a report fires the
organization's notification mapping, inside the same transaction as the status change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol, TypeVar
from uuid import UUID

from visitmail.domain.events import (
    AnswerCounts,
    AnswerValue,
    Event,
    EventSpec,
    EventStatus,
    MediaItem,
)
from visitmail.domain.reports import Consent, Lead, Report, ReportStatus
from visitmail.services.ports import AuditLog


class ReportTrigger(StrEnum):
    """What happened to a report; mapping rules fire ``on`` one of these."""

    EXPORTED = "exported"
    CHECKED = "checked"


@dataclass(frozen=True, slots=True)
class FiredNotification:
    """One action a trigger caused (an email or webhook queued in the outbox, or skipped
    because it was already sent for this report revision)."""

    rule: str  # the rule's id or name in the mapping
    kind: str  # "email" | "webhook"
    outbox_id: UUID | None  # the queued message; None when skipped
    recipients: tuple[str, ...] = ()
    duplicate: bool = False  # already notified for this report (idempotency)
    error: str | None = None  # why nothing was queued (kind "failed")


U_contra = TypeVar("U_contra", bound="ReportsUnitOfWork", contravariant=True)


class ReportTriggers(Protocol[U_contra]):
    """Fires the notification mapping for ``report`` on ``trigger``.

    Runs inside the caller's unit of work, after the report's new status is written and
    before the commit: whatever it enqueues is committed with the status change, and if it
    raises a domain error nothing is committed (the status stays as it was).

    Generic in the unit of work it needs: an implementation that also enqueues mail
    declares ``ReportTriggers[SomethingWithOutbox]`` and the report services then require
    a unit of work of that kind (the SQL unit of work has every repository)."""

    async def fired(
        self, uow: U_contra, report: Report, trigger: ReportTrigger
    ) -> list[FiredNotification]: ...


@dataclass(frozen=True, slots=True)
class ReportContent:
    """What the capturing app writes: validated lead, answers, notes, consent."""

    lead: Lead
    answers: Mapping[str, AnswerValue]
    notes: str
    consent: Consent


class EventRepository(Protocol):
    async def add(
        self, organization_id: UUID, spec: EventSpec, *, actor_id: UUID | None, now: datetime
    ) -> Event: ...

    async def get(self, organization_id: UUID, event_id: UUID) -> Event | None: ...

    async def list(
        self, organization_id: UUID, *, status: EventStatus | None = None
    ) -> Sequence[Event]:
        """Oldest first."""
        ...

    async def replace(
        self,
        organization_id: UUID,
        event_id: UUID,
        spec: EventSpec,
        *,
        actor_id: UUID | None,
        now: datetime,
    ) -> Event | None:
        """The updated event, or ``None`` if there is no such event in the organization."""
        ...


class MediaRepository(Protocol):
    async def add(
        self,
        organization_id: UUID,
        event_id: UUID,
        *,
        filename: str,
        content_type: str,
        data: bytes,
        sha256: str,
        title: str | None,
        actor_id: UUID | None,
        now: datetime,
    ) -> MediaItem: ...

    async def list(self, organization_id: UUID, event_id: UUID) -> Sequence[MediaItem]:
        """The event's media, oldest first, without their bytes."""
        ...

    async def get(
        self, organization_id: UUID, event_id: UUID, media_id: UUID
    ) -> MediaItem | None: ...

    async def content(
        self, organization_id: UUID, media_id: UUID
    ) -> tuple[MediaItem, bytes] | None:
        """A media file's description and bytes (templates attach these)."""
        ...

    async def delete(self, organization_id: UUID, event_id: UUID, media_id: UUID) -> bool:
        """True if a row was deleted."""
        ...


class ReportRepository(Protocol):
    async def add(
        self,
        organization_id: UUID,
        event_id: UUID,
        content: ReportContent,
        *,
        captured_by: UUID,
        now: datetime,
    ) -> Report: ...

    async def get(
        self, organization_id: UUID, report_id: UUID, *, for_update: bool = False
    ) -> Report | None:
        """The report with ``reporter`` (name, email of the capturing user) filled in."""
        ...

    async def list(
        self,
        organization_id: UUID,
        *,
        event_id: UUID | None = None,
        status: ReportStatus | None = None,
        captured_by: UUID | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Sequence[Report]:
        """Newest first."""
        ...

    async def answer_counts(self, organization_id: UUID, event_id: UUID) -> AnswerCounts:
        """What the event's reports answered, counted over their stored answers (read in
        batches, only the answers column)."""
        ...

    async def update_content(
        self,
        organization_id: UUID,
        report_id: UUID,
        content: ReportContent,
        *,
        revision: int,
        actor_id: UUID | None,
        now: datetime,
    ) -> Report | None: ...

    async def set_status(
        self,
        organization_id: UUID,
        report_id: UUID,
        status: ReportStatus,
        *,
        exported_at: datetime | None = None,
        checked_at: datetime | None = None,
        actor_id: UUID | None,
        now: datetime,
    ) -> Report | None:
        """Write the status (and the timestamp given); ``None`` if no such report."""
        ...


class ReportsUnitOfWork(Protocol):
    """One transaction with the event, media and report repositories (the SQL unit of work
    has them all, and every other repository, for the trigger hook)."""

    events: EventRepository
    media: MediaRepository
    reports: ReportRepository
    audit: AuditLog

    async def commit(self) -> None: ...
