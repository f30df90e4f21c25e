"""Use cases for visit reports: capture, read, update, export and check.

Who may do what: every role captures reports. Reporters and users read, change and export
their own reports; ``event_curator`` and up read, change and export any report of the
organization and are the only ones who check. A report the actor may not see (another
user's, another organization's) is :class:`NotFound`, never :class:`PermissionDenied`.

Exporting and checking fire the ``exported`` / ``checked`` trigger through a
:class:`ReportTriggers` hook, in the same transaction as the status change. The default
hook, :data:`NO_TRIGGERS`, fires nothing: the notification mapping plugs in by passing its
own hook.

Slow work stays out of the write transaction: given a ``read_uow`` and a hook that can
prepare (:class:`PreparingTriggers`), export and check first read the report and let the
hook render what it will queue (templates, PDF, MIME) in that read unit of work, with the
status change applied in memory; then, in the write transaction, they lock the report,
write the status and queue what was prepared, provided the report as written equals the
one prepared for (else, e.g. when it changed in between, the hook fires afresh inside the
write transaction: slower, still correct).

Each writing use case commits, or raises a domain error and commits nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TypeVar, runtime_checkable
from uuid import UUID

from visitmail.domain.errors import Conflict, InvalidInput, NotFound
from visitmail.domain.events import Event, EventStatus, checked_answers
from visitmail.domain.identity import Principal
from visitmail.domain.reports import Consent, Report, ReportStatus, checked_lead
from visitmail.domain.roles import Role
from visitmail.services.clock import Clock, utcnow
from visitmail.services.events import sees_drafts
from visitmail.services.identity import require_role
from visitmail.services.report_ports import (
    FiredNotification,
    ReportContent,
    ReportsUnitOfWork,
    ReportTrigger,
    ReportTriggers,
)

READ_ALL_ROLE = Role.EVENT_CURATOR
CHECK_ROLE = Role.EVENT_CURATOR
MAX_NOTES_LENGTH = 20_000

U = TypeVar("U", bound=ReportsUnitOfWork)
U_contra = TypeVar("U_contra", bound=ReportsUnitOfWork, contravariant=True)


class Prepared(Protocol):
    """What a :class:`PreparingTriggers` hook made ahead of the write transaction."""

    @property
    def report(self) -> Report:
        """The report as it was prepared for (status change applied)."""
        ...


@runtime_checkable
class PreparingTriggers(Protocol[U_contra]):
    """A :class:`ReportTriggers` hook that can do its reading and rendering ahead, in a
    read unit of work (``prepare``), and later only write (``fired_prepared``)."""

    async def fired(
        self, uow: U_contra, report: Report, trigger: ReportTrigger
    ) -> list[FiredNotification]: ...

    async def prepare(self, uow: U_contra, report: Report, trigger: ReportTrigger) -> Prepared: ...

    async def fired_prepared(
        self, uow: U_contra, prepared: Prepared
    ) -> list[FiredNotification]: ...


class NoTriggers:
    """The default :class:`ReportTriggers`: fires nothing and returns no notifications.

    A placeholder until the notification mapping is wired in; the status still changes."""

    async def fired(
        self, uow: ReportsUnitOfWork, report: Report, trigger: ReportTrigger
    ) -> list[FiredNotification]:
        return []


NO_TRIGGERS = NoTriggers()


@dataclass(frozen=True, slots=True)
class ReportInput:
    """A report as the app sends it, before validation."""

    lead: Mapping[str, str] = field(default_factory=dict)  # LEAD_FIELDS, gender included
    answers: Mapping[str, object] = field(default_factory=dict)
    notes: str = ""
    consent: Consent = field(default_factory=Consent)


@dataclass(frozen=True, slots=True)
class ReportChanges:
    """An update: each part that is not ``None`` replaces the report's (``lead`` as a
    whole); the others keep their value."""

    lead: Mapping[str, str] | None = None
    answers: Mapping[str, object] | None = None
    notes: str | None = None
    consent: Consent | None = None

    def applied_to(self, report: Report) -> ReportInput:
        return ReportInput(
            lead=self.lead if self.lead is not None else report.lead.as_context(),
            answers=self.answers if self.answers is not None else report.answers,
            notes=self.notes if self.notes is not None else report.notes,
            consent=self.consent if self.consent is not None else report.consent,
        )


@dataclass(frozen=True, slots=True)
class Triggered:
    """A report after export or check, and what its trigger fired."""

    report: Report
    notifications: list[FiredNotification]


def _content(event: Event, data: ReportInput) -> ReportContent:
    lead = checked_lead(data.lead)
    answers = checked_answers(event, data.answers)
    if len(data.notes) > MAX_NOTES_LENGTH:
        raise InvalidInput(f"must be at most {MAX_NOTES_LENGTH} characters", field="notes")
    if "\x00" in data.notes:
        raise InvalidInput("must not contain NUL characters", field="notes")
    return ReportContent(lead=lead, answers=answers, notes=data.notes, consent=data.consent)


async def _visible(
    uow: ReportsUnitOfWork, actor: Principal, report_id: UUID, *, for_update: bool = False
) -> Report:
    report = await uow.reports.get(actor.organization_id, report_id, for_update=for_update)
    if report is None or (
        report.captured_by != actor.user.id and not actor.role.at_least(READ_ALL_ROLE)
    ):
        raise NotFound("no such report")
    return report


async def capture_report(
    uow: ReportsUnitOfWork,
    actor: Principal,
    event_id: UUID,
    data: ReportInput,
    *,
    clock: Clock = utcnow,
) -> Report:
    """A new ``draft`` report captured by ``actor`` (any role).

    Raises :class:`InvalidInput` naming ``event_id`` (no such event in the organization,
    or a draft event for a role below event_curator), ``lead.<field>``,
    ``answers.<key>`` or ``notes``."""
    event = await uow.events.get(actor.organization_id, event_id)
    if event is None:
        raise InvalidInput("no such event", field="event_id")
    if event.status is EventStatus.DRAFT and not sees_drafts(actor):
        raise InvalidInput("the event is not live yet", field="event_id")
    content = _content(event, data)
    now = clock()
    report = await uow.reports.add(
        actor.organization_id, event_id, content, captured_by=actor.user.id, now=now
    )
    await uow.audit.record(
        actor.organization_id,
        actor_id=actor.user.id,
        action="report.create",
        target=str(report.id),
        fields=["lead", "answers", "notes", "consent"],
        now=now,
    )
    await uow.commit()
    return report


async def get_report(uow: ReportsUnitOfWork, actor: Principal, report_id: UUID) -> Report:
    return await _visible(uow, actor, report_id)


async def list_reports(
    uow: ReportsUnitOfWork,
    actor: Principal,
    *,
    event_id: UUID | None = None,
    status: ReportStatus | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Sequence[Report]:
    """Newest first: the organization's reports for event_curator and up, the actor's own
    for the others."""
    own = None if actor.role.at_least(READ_ALL_ROLE) else actor.user.id
    return await uow.reports.list(
        actor.organization_id,
        event_id=event_id,
        status=status,
        captured_by=own,
        limit=limit,
        offset=offset,
    )


async def update_report(
    uow: ReportsUnitOfWork,
    actor: Principal,
    report_id: UUID,
    changes: ReportChanges,
    *,
    event_id: UUID | None = None,
    expected_revision: int | None = None,
    clock: Clock = utcnow,
) -> Report:
    """Replace the report's lead, answers, notes and/or consent (the parts ``changes``
    gives); the status stays. The result is validated as a whole, as on capture.

    ``revision`` grows by one when anything changed (an identical update changes nothing,
    so it cannot make the mapping notify again). ``event_id``, if given, must be the
    report's own (a report does not move between events). ``expected_revision``, if given,
    must be the current one, else :class:`Conflict` on ``revision`` (someone else changed
    the report since it was read)."""
    report = await _visible(uow, actor, report_id, for_update=True)
    if event_id is not None and event_id != report.event_id:
        raise InvalidInput("a report cannot move to another event", field="event_id")
    if expected_revision is not None and expected_revision != report.revision:
        raise Conflict(
            f"the report is at revision {report.revision}; reload and retry", field="revision"
        )
    event = await uow.events.get(actor.organization_id, report.event_id)
    if event is None:  # events are not deleted; guard anyway
        raise NotFound("no such report")
    content = _content(event, changes.applied_to(report))
    unchanged = (
        content.lead == report.lead
        and dict(content.answers) == report.answers
        and content.notes == report.notes
        and content.consent == report.consent
    )
    if unchanged:
        return report
    now = clock()
    updated = await uow.reports.update_content(
        actor.organization_id,
        report_id,
        content,
        revision=report.revision + 1,
        actor_id=actor.user.id,
        now=now,
    )
    assert updated is not None  # locked above, same transaction
    await uow.audit.record(
        actor.organization_id,
        actor_id=actor.user.id,
        action="report.update",
        target=str(report_id),
        fields=["lead", "answers", "notes", "consent"],
        now=now,
    )
    await uow.commit()
    return updated


async def export_report(
    uow: U,
    actor: Principal,
    report_id: UUID,
    *,
    triggers: ReportTriggers[U] | None = None,
    clock: Clock = utcnow,
    read_uow: U | None = None,
) -> Triggered:
    """Mark the report exported (its capturer, or event_curator and up) and fire the
    ``exported`` trigger. Exporting again fires again (the hook decides about duplicates);
    a checked report stays ``checked``. ``read_uow``: prepare the notifications there
    first (see the module doc)."""
    hook: ReportTriggers[U] = triggers if triggers is not None else NO_TRIGGERS
    now = clock()
    prepared = None
    if read_uow is not None and isinstance(hook, PreparingTriggers):
        seen = await _visible(read_uow, actor, report_id)
        preview = _written(seen, _export_status(seen), exported_at=now, now=now)
        prepared = await hook.prepare(read_uow, preview, ReportTrigger.EXPORTED)
        # End the read transaction before the writer's is taken: a request never holds two
        # connections, so concurrent exports cannot exhaust the pool (HTTP 500 at 50/s).
        await read_uow.commit()
    report = await _visible(uow, actor, report_id, for_update=True)
    updated = await uow.reports.set_status(
        actor.organization_id,
        report_id,
        _export_status(report),
        exported_at=now,
        actor_id=actor.user.id,
        now=now,
    )
    assert updated is not None
    fired = await _fire(uow, hook, updated, ReportTrigger.EXPORTED, prepared)
    await uow.audit.record(
        actor.organization_id,
        actor_id=actor.user.id,
        action="report.export",
        target=str(report_id),
        fields=["status"],
        now=now,
    )
    await uow.commit()
    return Triggered(updated, fired)


def _export_status(report: Report) -> ReportStatus:
    return ReportStatus.CHECKED if report.status is ReportStatus.CHECKED else ReportStatus.EXPORTED


def _written(
    report: Report,
    status: ReportStatus,
    *,
    now: datetime,
    exported_at: datetime | None = None,
    checked_at: datetime | None = None,
) -> Report:
    """``report`` as ``set_status`` will write it."""
    return dataclasses.replace(
        report,
        status=status,
        updated_at=now,
        exported_at=exported_at if exported_at is not None else report.exported_at,
        checked_at=checked_at if checked_at is not None else report.checked_at,
    )


async def _fire(
    uow: U,
    hook: ReportTriggers[U],
    report: Report,
    trigger: ReportTrigger,
    prepared: Prepared | None,
) -> list[FiredNotification]:
    if prepared is not None and prepared.report == report and isinstance(hook, PreparingTriggers):
        return await hook.fired_prepared(uow, prepared)
    return await hook.fired(uow, report, trigger)


async def check_report(
    uow: U,
    actor: Principal,
    report_id: UUID,
    *,
    triggers: ReportTriggers[U] | None = None,
    clock: Clock = utcnow,
    read_uow: U | None = None,
) -> Triggered:
    """Mark the report checked (event_curator and up; :class:`PermissionDenied` below) and
    fire the ``checked`` trigger. ``read_uow``: as for :func:`export_report`."""
    require_role(actor, CHECK_ROLE)
    hook: ReportTriggers[U] = triggers if triggers is not None else NO_TRIGGERS
    now = clock()
    prepared = None
    if read_uow is not None and isinstance(hook, PreparingTriggers):
        seen = await _visible(read_uow, actor, report_id)
        preview = _written(seen, ReportStatus.CHECKED, checked_at=now, now=now)
        prepared = await hook.prepare(read_uow, preview, ReportTrigger.CHECKED)
        await read_uow.commit()  # one connection at a time (see export_report)
    await _visible(uow, actor, report_id, for_update=True)
    updated = await uow.reports.set_status(
        actor.organization_id,
        report_id,
        ReportStatus.CHECKED,
        checked_at=now,
        actor_id=actor.user.id,
        now=now,
    )
    assert updated is not None
    fired = await _fire(uow, hook, updated, ReportTrigger.CHECKED, prepared)
    await uow.audit.record(
        actor.organization_id,
        actor_id=actor.user.id,
        action="report.check",
        target=str(report_id),
        fields=["status"],
        now=now,
    )
    await uow.commit()
    return Triggered(updated, fired)
