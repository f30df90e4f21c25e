"""Events (the questionnaires reports are captured with) and their media library.

Every role lists and reads events (roles below ``event_curator`` see live events only);
``event_manager`` and up create and change them; ``event_curator`` and up upload and
delete media. Another organization's event or file answers 404.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote
from uuid import UUID

from fastapi import APIRouter, File, Form, Query, Response, UploadFile, status
from fastapi.responses import JSONResponse

from visitmail.domain.events import MAX_MEDIA_BYTES, EventStatus, MediaTooLarge, UnsupportedMedia
from visitmail.services import events
from visitmail.web.api.event_schemas import EventIn, EventOut, MediaOut
from visitmail.web.api.schemas import ErrorResponse
from visitmail.web.deps import PrincipalDep, ReadUowDep, UowDep
from visitmail.web.errors import error_body

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorResponse},
    403: {"model": ErrorResponse, "description": "the role is too low"},
    404: {"model": ErrorResponse, "description": "no such event in this organization"},
    422: {"model": ErrorResponse, "description": "invalid input; `field` names it"},
}
UPLOAD_ERRORS: dict[int | str, dict[str, object]] = {
    413: {"model": ErrorResponse, "description": "the file exceeds 10 MB (`field`: `file`)"},
    415: {
        "model": ErrorResponse,
        "description": "not a PDF, PNG, JPEG, GIF or WebP file (`field`: `file`)",
    },
}
DOWNLOAD: dict[int | str, dict[str, object]] = {
    200: {
        "description": "the file's bytes, with its content type",
        "content": {
            t: {"schema": {"type": "string", "format": "binary"}}
            for t in ("application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp")
        },
    }
}
_CHUNK = 64 * 1024

router = APIRouter(prefix="/api/v1/events", tags=["events"], responses=ERRORS)


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create an event (event_manager+)")
async def create_event(body: EventIn, principal: PrincipalDep, uow: UowDep) -> EventOut:
    """A questionnaire: name, languages (the first is the default), questions (`text`,
    `number`, `single`, `multi`, `bool`; options for `single`/`multi`), status and the
    optional dates `starts_on`/`ends_on`. A problem answers 422 naming its path, e.g.
    `questions[2].options` or `ends_on`."""
    return EventOut.of(await events.create_event(uow, principal, body.to_domain()))


@router.get("", summary="The organization's events (every role; the app sees live ones)")
async def list_events(
    principal: PrincipalDep,
    uow: ReadUowDep,
    status: Annotated[EventStatus | None, Query(description="only this status")] = None,
) -> list[EventOut]:
    """Oldest first. Roles below event_curator see live events only."""
    return [EventOut.of(e) for e in await events.list_events(uow, principal, status=status)]


@router.get("/{event_id}", summary="One event with its questions")
async def get_event(event_id: UUID, principal: PrincipalDep, uow: ReadUowDep) -> EventOut:
    return EventOut.of(await events.get_event(uow, principal, event_id))


@router.put("/{event_id}", summary="Replace an event's definition (event_manager+)")
async def update_event(
    event_id: UUID, body: EventIn, principal: PrincipalDep, uow: UowDep
) -> EventOut:
    """The whole definition is replaced and validated as on create (dates left out are
    cleared); without `status` the event keeps its current one. Reports already captured
    keep their stored answers, also to questions or options that are removed."""
    event = await events.update_event(
        uow,
        principal,
        event_id,
        body.to_domain(),
        keep_status="status" not in body.model_fields_set,
    )
    return EventOut.of(event)


# --- the media library --------------------------------------------------------------------


async def _read_limited(upload: UploadFile) -> bytes:
    """At most one byte more than the limit: enough to know it is too large."""
    parts: list[bytes] = []
    size = 0
    while size <= MAX_MEDIA_BYTES:
        chunk = await upload.read(_CHUNK)
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback name and the exact UTF-8 one (RFC 6266)."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\;%' else "_" for ch in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


@router.post(
    "/{event_id}/media",
    status_code=status.HTTP_201_CREATED,
    summary="Upload a PDF or image to the event's media library (event_curator+)",
    responses=UPLOAD_ERRORS,
    response_model=MediaOut,
)
async def upload_media(
    event_id: UUID,
    principal: PrincipalDep,
    uow: UowDep,
    file: Annotated[UploadFile, File(description="PDF, PNG, JPEG, GIF or WebP; at most 10 MB")],
    title: Annotated[str | None, Form(max_length=200)] = None,
) -> MediaOut | JSONResponse:
    """Multipart form with `file` and an optional `title`. The type is recognised from the
    file's first bytes, not from its name or declared type; the file is stored in the
    database (every node serves it) with its SHA-256."""
    data = await _read_limited(file)
    try:
        item = await events.add_media(
            uow, principal, event_id, filename=file.filename, data=data, title=title
        )
    except MediaTooLarge as exc:
        return JSONResponse(error_body(exc.code, exc.message, exc.field), 413)
    except UnsupportedMedia as exc:
        return JSONResponse(error_body(exc.code, exc.message, exc.field), 415)
    return MediaOut.of(item)


@router.get("/{event_id}/media", summary="The event's media library")
async def list_media(event_id: UUID, principal: PrincipalDep, uow: ReadUowDep) -> list[MediaOut]:
    """Descriptions only (id, filename, content type, size, SHA-256, title, time)."""
    return [MediaOut.of(m) for m in await events.list_media(uow, principal, event_id)]


@router.get(
    "/{event_id}/media/{media_id}",
    summary="Download one media file",
    response_class=Response,
    responses=DOWNLOAD,
)
async def download_media(
    event_id: UUID, media_id: UUID, principal: PrincipalDep, uow: ReadUowDep
) -> Response:
    item, data = await events.media_content(uow, principal, event_id, media_id)
    return Response(
        content=data,
        media_type=item.content_type,
        headers={
            "Content-Disposition": content_disposition(item.filename),
            "X-Content-Type-Options": "nosniff",
            "ETag": f'"{item.sha256}"',
        },
    )


@router.delete(
    "/{event_id}/media/{media_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a media file (event_curator+)",
    response_class=Response,
)
async def delete_media(
    event_id: UUID, media_id: UUID, principal: PrincipalDep, uow: UowDep
) -> Response:
    await events.delete_media(uow, principal, event_id, media_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
