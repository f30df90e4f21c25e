"""Use cases of the organization's notification mapping: read the active one, save a new
revision, list revisions, activate (roll back to) one, and dry-run a report against it.

Only ``admin`` may use any of them (:class:`PermissionDenied` below).

The mapping is one document (decoded JSON; YAML is not accepted: no YAML parser is
installed). Saving validates the *whole* document with
:func:`~visitmail.domain.mapping.parse_mapping` and raises :class:`MappingInvalid` listing
every problem with its path; nothing is stored then and the active revision stays. Saving
(and a dry run of a draft) also refuses answers that the questions of the events a rule
covers do not have (:mod:`visitmail.domain.mapping_refs`); at send time such an answer is
simply empty, as before. A valid document is stored exactly as sent, as the next revision,
and becomes the active one; saving a document equal to the active one stores nothing.
Revisions are never changed or deleted: rolling back activates an older one (validated
again, in case the rules became stricter since it was saved).

A dry run plans what a report would fire (:func:`~visitmail.domain.mapping_eval.fire`),
rendered, and neither sends nor stores anything.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from visitmail.domain.errors import Conflict, InvalidInput, NotFound
from visitmail.domain.events import checked_answers
from visitmail.domain.identity import Principal
from visitmail.domain.ids import new_id
from visitmail.domain.mail import Mailbox
from visitmail.domain.mapping import (
    EMPTY_MAPPING,
    MappingInvalid,
    NotificationMapping,
    Trigger,
    parse_mapping,
)
from visitmail.domain.mapping_eval import PlannedAction, fire
from visitmail.domain.mapping_refs import EventQuestions, answer_check
from visitmail.domain.reports import Report, ReportStatus, checked_lead
from visitmail.domain.roles import Role
from visitmail.services.clock import Clock, utcnow
from visitmail.services.identity import require_role
from visitmail.services.notification_ports import MappingUnitOfWork, StoredMapping
from visitmail.services.reports import MAX_NOTES_LENGTH, ReportInput

MAPPING_ROLE = Role.ADMIN
EMPTY_DOCUMENT: dict[str, Any] = {"version": 1, "rules": []}
MAX_LIST = 500

__all__ = [
    "EMPTY_DOCUMENT",
    "DryRun",
    "InlineReport",
    "MappingInvalid",
    "Saved",
    "activate_revision",
    "dry_run",
    "get_active",
    "get_revision",
    "list_revisions",
    "put_mapping",
]


@dataclass(frozen=True, slots=True)
class Saved:
    revision: StoredMapping
    created: bool  # False: the document equals the active one; nothing was stored


@dataclass(frozen=True, slots=True)
class InlineReport:
    """A report given in the dry-run request instead of a stored one. ``event_id``: the
    rules of that event (and ``"*"``) apply, and the answers are checked against its
    questions; ``None``: only ``"*"`` rules apply and the answers are taken as given.
    ``reporter``: name and email; by default the caller."""

    data: ReportInput
    event_id: UUID | None = None
    reporter: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class DryRun:
    """What a report fires, rendered. ``revision`` is the active revision used (``None``
    when a draft document was given, or when none is stored); ``sender`` is the From the
    emails would carry (``None`` without SMTP settings: nothing would be queued)."""

    trigger: Trigger
    report: Report
    revision: StoredMapping | None
    planned: list[PlannedAction]
    sender: Mailbox | None
    inline: bool


def _canonical(document: object) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


async def _checked(
    uow: MappingUnitOfWork, organization_id: UUID, document: object
) -> NotificationMapping:
    """Validate ``document`` as a whole, including the answers it reads against the
    questions of the organization's events (:mod:`visitmail.domain.mapping_refs`). Raises
    :class:`MappingInvalid` with every problem."""
    events = await uow.events.list(organization_id)
    questions = {
        str(e.id): EventQuestions(e.name, tuple(q.key for q in e.questions)) for e in events
    }
    return parse_mapping(document, sources=answer_check(questions))


async def get_active(uow: MappingUnitOfWork, actor: Principal) -> StoredMapping | None:
    """The active revision, ``None`` if the organization never saved a mapping (then no
    rule fires)."""
    require_role(actor, MAPPING_ROLE)
    return await uow.mappings.active(actor.organization_id)


async def put_mapping(
    uow: MappingUnitOfWork,
    actor: Principal,
    document: object,
    *,
    expected_number: int | None = None,
    clock: Clock = utcnow,
) -> Saved:
    """Validate ``document`` and store it as the new active revision.

    ``expected_number``, if given, must be the active revision's number (``0``: none yet),
    else :class:`Conflict` on ``revision`` (someone saved meanwhile). Raises
    :class:`MappingInvalid` (every problem, with its path) for an invalid document."""
    require_role(actor, MAPPING_ROLE)
    await _checked(uow, actor.organization_id, document)
    assert isinstance(document, dict)  # parse_mapping refuses anything else
    doc: dict[str, Any] = document
    active = await uow.mappings.active(actor.organization_id, for_update=True)
    current = active.number if active is not None else 0
    if expected_number is not None and expected_number != current:
        raise Conflict(
            f"the active mapping is revision {current}, not {expected_number}; reload and retry",
            field="revision",
        )
    if active is not None and _canonical(active.document) == _canonical(doc):
        return Saved(active, created=False)
    now = clock()
    stored = await uow.mappings.add(actor.organization_id, doc, actor_id=actor.user.id, now=now)
    await uow.audit.record(
        actor.organization_id,
        actor_id=actor.user.id,
        action="mapping.update",
        target=str(stored.id),
        fields=["document"],
        now=now,
    )
    await uow.commit()
    return Saved(stored, created=True)


async def list_revisions(
    uow: MappingUnitOfWork, actor: Principal, *, limit: int = 100, offset: int = 0
) -> Sequence[StoredMapping]:
    """Newest first."""
    require_role(actor, MAPPING_ROLE)
    return await uow.mappings.list(
        actor.organization_id, limit=max(1, min(limit, MAX_LIST)), offset=max(0, offset)
    )


async def get_revision(
    uow: MappingUnitOfWork, actor: Principal, revision_id: UUID
) -> StoredMapping:
    require_role(actor, MAPPING_ROLE)
    found = await uow.mappings.get(actor.organization_id, revision_id)
    if found is None:
        raise NotFound("no such mapping revision")
    return found


async def activate_revision(
    uow: MappingUnitOfWork, actor: Principal, revision_id: UUID, *, clock: Clock = utcnow
) -> StoredMapping:
    """Make an existing revision the active one (roll back or forward). :class:`NotFound`
    for another organization's or an unknown revision; :class:`MappingInvalid` if the
    stored document no longer passes validation."""
    require_role(actor, MAPPING_ROLE)
    found = await get_revision(uow, actor, revision_id)
    parse_mapping(dict(found.document))
    if found.active:
        return found
    now = clock()
    activated = await uow.mappings.activate(actor.organization_id, revision_id, now=now)
    if activated is None:  # pragma: no cover - read above in the same transaction
        raise NotFound("no such mapping revision")
    await uow.audit.record(
        actor.organization_id,
        actor_id=actor.user.id,
        action="mapping.activate",
        target=str(revision_id),
        fields=["active"],
        now=now,
    )
    await uow.commit()
    return activated


async def active_mapping(
    uow: MappingUnitOfWork, organization_id: UUID
) -> tuple[StoredMapping | None, NotificationMapping]:
    """The active revision and its model (the empty mapping when none is stored). Raises
    :class:`MappingInvalid` if the stored document does not validate any more."""
    stored = await uow.mappings.active(organization_id)
    if stored is None:
        return None, EMPTY_MAPPING
    return stored, parse_mapping(dict(stored.document))


async def _inline_report(
    uow: MappingUnitOfWork, actor: Principal, inline: InlineReport, trigger: Trigger, now: Any
) -> Report:
    try:
        lead = checked_lead(inline.data.lead)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, field=f"report.{exc.field or 'lead'}") from None
    answers: dict[str, Any] = dict(inline.data.answers)
    event_id = inline.event_id
    if event_id is not None:
        event = await uow.events.get(actor.organization_id, event_id)
        if event is None:
            raise InvalidInput("no such event", field="report.event_id")
        try:
            answers = dict(checked_answers(event, inline.data.answers))
        except InvalidInput as exc:
            raise InvalidInput(exc.message, field=f"report.{exc.field or 'answers'}") from None
    if len(inline.data.notes) > MAX_NOTES_LENGTH:
        raise InvalidInput(f"must be at most {MAX_NOTES_LENGTH} characters", field="report.notes")
    reporter = (
        dict(inline.reporter)
        if inline.reporter is not None
        else {"name": actor.user.display_name, "email": actor.user.email}
    )
    status = ReportStatus.CHECKED if trigger is Trigger.CHECKED else ReportStatus.EXPORTED
    return Report(
        id=new_id(),
        organization_id=actor.organization_id,
        event_id=event_id or uuid.UUID(int=0),
        lead=lead,
        answers=answers,
        notes=inline.data.notes,
        consent=inline.data.consent,
        status=status,
        captured_by=actor.user.id,
        captured_at=now,
        updated_at=now,
        reporter=reporter,
    )


async def dry_run(
    uow: MappingUnitOfWork,
    actor: Principal,
    *,
    trigger: Trigger = Trigger.EXPORTED,
    report_id: UUID | None = None,
    inline: InlineReport | None = None,
    document: object | None = None,
    clock: Clock = utcnow,
) -> DryRun:
    """What ``report_id`` (a stored report of the organization) or ``inline`` would fire on
    ``trigger`` under the active mapping, or under ``document`` (a draft, validated first:
    :class:`MappingInvalid`). Sends nothing and stores nothing.

    Exactly one of ``report_id`` and ``inline``: else :class:`InvalidInput` on ``report``.
    An unknown report is :class:`NotFound`."""
    require_role(actor, MAPPING_ROLE)
    if (report_id is None) == (inline is None):
        raise InvalidInput("give either report_id or an inline report", field="report")
    revision: StoredMapping | None
    if document is not None:
        mapping = await _checked(uow, actor.organization_id, document)
        revision = None
    else:
        revision, mapping = await active_mapping(uow, actor.organization_id)
    if report_id is not None:
        found = await uow.reports.get(actor.organization_id, report_id)
        if found is None:
            raise NotFound("no such report")
        report = found
    else:
        assert inline is not None
        report = await _inline_report(uow, actor, inline, trigger, clock())
    stored_settings = await uow.smtp_settings.get(actor.organization_id)
    sender = None
    if stored_settings is not None:
        settings = stored_settings.settings
        sender = Mailbox(settings.sender_email, settings.sender_name or "")
    # Off the event loop: every condition and template may spend its time budget.
    planned = await asyncio.to_thread(fire, mapping, report, trigger)
    return DryRun(
        trigger=trigger,
        report=report,
        revision=revision,
        planned=planned,
        sender=sender,
        inline=inline is not None,
    )
