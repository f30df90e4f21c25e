"""Use cases for events (questionnaires) and their media library.

Who may do what: every role reads events, but roles below ``event_curator`` (the capturing
app) see live events only; a draft is "no such event" to them. ``event_manager`` and up
create and change events; ``event_curator`` and up upload and delete media; whoever sees
an event lists and downloads its media. Another organization's event is always
:class:`NotFound`.

Each writing use case commits, or raises a domain error and commits nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from uuid import UUID

from visitmail.domain.errors import NotFound
from visitmail.domain.events import (
    AnswerCounts,
    Event,
    EventSpec,
    EventStatus,
    MediaItem,
    QuestionType,
    check_media_size,
    checked_spec,
    clean_filename,
    clean_title,
    sniff_content_type,
)
from visitmail.domain.identity import Principal
from visitmail.domain.roles import Role
from visitmail.services.clock import Clock, utcnow
from visitmail.services.identity import require_role
from visitmail.services.report_ports import ReportsUnitOfWork

MANAGE_ROLE = Role.EVENT_MANAGER
CURATE_ROLE = Role.EVENT_CURATOR


def sees_drafts(actor: Principal) -> bool:
    """Curators and up see draft events; the capturing roles see live ones only."""
    return actor.role.at_least(CURATE_ROLE)


async def create_event(
    uow: ReportsUnitOfWork, actor: Principal, spec: EventSpec, *, clock: Clock = utcnow
) -> Event:
    """A new event; :class:`PermissionDenied` below event_manager, :class:`InvalidInput`
    naming the path of the first problem in ``spec``."""
    require_role(actor, MANAGE_ROLE)
    valid = checked_spec(spec)
    now = clock()
    event = await uow.events.add(actor.organization_id, valid, actor_id=actor.user.id, now=now)
    await uow.audit.record(
        actor.organization_id,
        actor_id=actor.user.id,
        action="event.create",
        target=str(event.id),
        fields=["name", "languages", "questions", "status", "starts_on", "ends_on"],
        now=now,
    )
    await uow.commit()
    return event


async def list_events(
    uow: ReportsUnitOfWork, actor: Principal, *, status: EventStatus | None = None
) -> Sequence[Event]:
    if not sees_drafts(actor):
        if status is EventStatus.DRAFT:
            return []
        status = EventStatus.LIVE
    return await uow.events.list(actor.organization_id, status=status)


async def get_event(uow: ReportsUnitOfWork, actor: Principal, event_id: UUID) -> Event:
    """The event, or :class:`NotFound` (another organization's, or a draft the actor may
    not see)."""
    event = await uow.events.get(actor.organization_id, event_id)
    if event is None or (event.status is EventStatus.DRAFT and not sees_drafts(actor)):
        raise NotFound("no such event")
    return event


async def update_event(
    uow: ReportsUnitOfWork,
    actor: Principal,
    event_id: UUID,
    spec: EventSpec,
    *,
    keep_status: bool = False,
    clock: Clock = utcnow,
) -> Event:
    """Replace the event's definition (event_manager and up); with ``keep_status`` the
    event keeps its current status instead of ``spec.status``. Reports already captured
    keep their answers, also to removed questions and options (nothing is deleted); they are
    validated against the new questions when next changed. :func:`answer_counts` tells
    what a change would leave behind."""
    require_role(actor, MANAGE_ROLE)
    if keep_status:
        current = await uow.events.get(actor.organization_id, event_id)
        if current is None:
            raise NotFound("no such event")
        spec = replace(spec, status=current.status)
    valid = checked_spec(spec)
    now = clock()
    event = await uow.events.replace(
        actor.organization_id, event_id, valid, actor_id=actor.user.id, now=now
    )
    if event is None:
        raise NotFound("no such event")
    await uow.audit.record(
        actor.organization_id,
        actor_id=actor.user.id,
        action="event.update",
        target=str(event_id),
        fields=["name", "languages", "questions", "status", "starts_on", "ends_on"],
        now=now,
    )
    await uow.commit()
    return event


async def answer_counts(uow: ReportsUnitOfWork, actor: Principal, event_id: UUID) -> AnswerCounts:
    """How many of the event's reports answered each question and chose each option of its
    choice questions (for the warning when a question or option is removed); whoever sees
    the event may ask."""
    event = await get_event(uow, actor, event_id)
    counts = await uow.reports.answer_counts(actor.organization_id, event_id)
    # Only a choice question's answers are option keys; a text answer is not an option.
    choice = {q.key for q in event.questions if q.type in (QuestionType.SINGLE, QuestionType.MULTI)}
    counts.options = {k: v for k, v in counts.options.items() if k in choice}
    return counts


# --- the media library --------------------------------------------------------------------


async def add_media(
    uow: ReportsUnitOfWork,
    actor: Principal,
    event_id: UUID,
    *,
    filename: str | None,
    data: bytes,
    title: str | None = None,
    clock: Clock = utcnow,
) -> MediaItem:
    """Store a PDF or image in the event's library (event_curator and up).

    The type comes from the bytes' signature. Raises :class:`MediaTooLarge` over 10 MB,
    :class:`UnsupportedMedia` for anything else than PDF, PNG, JPEG, GIF or WebP,
    :class:`InvalidInput` for a bad name (``file``) or title (``title``), :class:`NotFound`
    for an unknown event."""
    require_role(actor, CURATE_ROLE)
    await get_event(uow, actor, event_id)
    check_media_size(len(data))
    content_type = sniff_content_type(data)
    name = clean_filename(filename, content_type)
    label = clean_title(title)
    now = clock()
    item = await uow.media.add(
        actor.organization_id,
        event_id,
        filename=name,
        content_type=content_type,
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        title=label,
        actor_id=actor.user.id,
        now=now,
    )
    await uow.audit.record(
        actor.organization_id,
        actor_id=actor.user.id,
        action="media.upload",
        target=str(item.id),
        fields=["file", "title"],
        now=now,
    )
    await uow.commit()
    return item


async def list_media(
    uow: ReportsUnitOfWork, actor: Principal, event_id: UUID
) -> Sequence[MediaItem]:
    await get_event(uow, actor, event_id)
    return await uow.media.list(actor.organization_id, event_id)


async def media_content(
    uow: ReportsUnitOfWork, actor: Principal, event_id: UUID, media_id: UUID
) -> tuple[MediaItem, bytes]:
    """A media file and its bytes; :class:`NotFound` unless it belongs to this event of the
    actor's organization."""
    await get_event(uow, actor, event_id)
    found = await uow.media.content(actor.organization_id, media_id)
    if found is None or found[0].event_id != event_id:
        raise NotFound("no such media file")
    return found


async def delete_media(
    uow: ReportsUnitOfWork,
    actor: Principal,
    event_id: UUID,
    media_id: UUID,
    *,
    clock: Clock = utcnow,
) -> None:
    require_role(actor, CURATE_ROLE)
    await get_event(uow, actor, event_id)
    if not await uow.media.delete(actor.organization_id, event_id, media_id):
        raise NotFound("no such media file")
    await uow.audit.record(
        actor.organization_id,
        actor_id=actor.user.id,
        action="media.delete",
        target=str(media_id),
        fields=[],
        now=clock(),
    )
    await uow.commit()
