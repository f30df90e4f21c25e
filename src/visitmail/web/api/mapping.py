"""The organization's notification mapping: the active document, new revisions, history
and roll-back, and dry runs. Admin only (other roles get 403).

``PUT`` takes the whole document as the JSON body (``Content-Type: application/json``;
YAML is refused with 415: no YAML parser is installed). An invalid document answers 422
with code ``mapping_invalid`` and ``error.details`` listing every problem as
``{"field": "rules[0].switch.cases[0].match", "message": "…"}``; nothing is stored and the
active revision stays.

Also here: the wiring of the notification hook that exporting and checking a report fire
(:func:`notification_triggers`), with the MIME and PDF adapters it is given.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from visitmail.adapters.render.mime import build_message
from visitmail.adapters.render.report_pdf import ThreadedReportPdf
from visitmail.domain.errors import InvalidInput
from visitmail.domain.mail import BuiltMessage, MailSpec
from visitmail.domain.mapping import MappingInvalid
from visitmail.services import mapping
from visitmail.services.notifications import MappingTriggers
from visitmail.web.api.mapping_schemas import (
    DOCUMENT_SCHEMA,
    DryRunIn,
    DryRunOut,
    MappingInvalidResponse,
    MappingOut,
    ProblemOut,
    RevisionOut,
)
from visitmail.web.api.schemas import MAX_INPUT_INT, ErrorResponse
from visitmail.web.deps import AdminDep, ReadUowDep, UowDep
from visitmail.web.errors import error_body

# --- the adapters the notification hook is given -------------------------------------------


class MimeRenderer:
    """:class:`~visitmail.services.notification_ports.MailRenderer` over the MIME builder."""

    def build(self, spec: MailSpec) -> BuiltMessage:
        return build_message(spec)


NOTIFICATIONS = MappingTriggers(MimeRenderer(), ThreadedReportPdf())


def notification_triggers() -> MappingTriggers:
    """The one hook instance (it caches parsed mapping revisions)."""
    return NOTIFICATIONS


# --- routes ------------------------------------------------------------------------------

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorResponse},
    403: {"model": ErrorResponse, "description": "admin only"},
}
INVALID: dict[int | str, dict[str, object]] = {
    422: {
        "model": MappingInvalidResponse,
        "description": "code `mapping_invalid`: `details` lists every problem with its path "
        "(other codes: invalid input, `field` names it)",
    }
}
NOT_FOUND: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorResponse, "description": "no such revision in this organization"}
}

router = APIRouter(
    prefix="/api/v1/notification-mapping", tags=["notification mapping"], responses=ERRORS
)

_JSON_TYPES = ("application/json",)
_YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


def invalid_mapping(exc: MappingInvalid, root: str = "body") -> JSONResponse:
    """422 ``mapping_invalid``. A problem with the document as a whole (path ``""``, e.g.
    it is not an object) is named by ``root``, where the document sits in the request: a
    422 always names a field."""
    body = error_body(exc.code, exc.message, exc.field or root)
    body["error"]["details"] = [
        ProblemOut(field=p.path or root, message=p.message).model_dump() for p in exc.problems
    ]
    return JSONResponse(body, 422)


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


async def _json_document(request: Request) -> object:
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type in _YAML_TYPES:
        raise _Unsupported("YAML is not supported: send the mapping as JSON (application/json)")
    if content_type and content_type not in _JSON_TYPES and not content_type.endswith("+json"):
        raise _Unsupported(f"send the mapping as application/json, not {content_type}")
    raw = await request.body()
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise InvalidInput(
            "the body is not valid JSON (or nested too deeply)", field="body"
        ) from None


class _Unsupported(Exception):
    pass


@router.get("", summary="The active notification mapping (admin)")
async def get_mapping(principal: AdminDep, uow: ReadUowDep) -> MappingOut:
    """The active revision with its document. Before the first save: revision `0`, `id`
    null and the empty document `{"version": 1, "rules": []}` (no rule fires)."""
    return MappingOut.of_stored(await mapping.get_active(uow, principal))


@router.put(
    "",
    summary="Save the mapping as a new, active revision (admin)",
    responses={
        **INVALID,
        409: {"model": ErrorResponse, "description": "`expected_revision` is not the active one"},
        415: {"model": ErrorResponse, "description": "not JSON (YAML is not accepted)"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": DOCUMENT_SCHEMA}},
        }
    },
)
async def put_mapping(
    request: Request,
    principal: AdminDep,
    uow: UowDep,
    expected_revision: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_INPUT_INT,
            description="refuse (409) unless this is the active revision's number",
        ),
    ] = None,
) -> Any:
    """The body is the whole document. It is validated as a whole; every problem is
    answered at once (422 `mapping_invalid`, `error.details`), and then nothing is stored.
    A valid document is stored exactly as sent and becomes active at once: the next export
    uses it. Saving the active document again stores nothing (`created: false`)."""
    try:
        document = await _json_document(request)
    except _Unsupported as exc:
        return JSONResponse(error_body("unsupported_media_type", str(exc), "body"), 415)
    try:
        saved = await mapping.put_mapping(
            uow, principal, document, expected_number=expected_revision
        )
    except MappingInvalid as exc:
        return invalid_mapping(exc)
    return MappingOut.of_stored(saved.revision, created=saved.created)


@router.get("/revisions", summary="Every saved revision, newest first (admin)")
async def list_revisions(
    principal: AdminDep,
    uow: ReadUowDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_INPUT_INT)] = 0,
) -> list[RevisionOut]:
    """Number, whether active, rule count, who saved it and when; without the documents."""
    found = await mapping.list_revisions(uow, principal, limit=limit, offset=offset)
    return [RevisionOut.of(r) for r in found]


@router.get(
    "/revisions/{revision_id}",
    summary="One revision with its document (admin)",
    responses=NOT_FOUND,
)
async def get_revision(revision_id: UUID, principal: AdminDep, uow: ReadUowDep) -> MappingOut:
    return MappingOut.of_stored(await mapping.get_revision(uow, principal, revision_id))


@router.post(
    "/revisions/{revision_id}/activate",
    summary="Make a revision the active one: roll back (admin)",
    responses={**NOT_FOUND, **INVALID},
)
async def activate_revision(revision_id: UUID, principal: AdminDep, uow: UowDep) -> Any:
    """The revision is validated again (422 `mapping_invalid` if it no longer passes) and
    becomes active; the others stay stored. Notifications already sent for a report are
    not sent again under the re-activated rules."""
    try:
        activated = await mapping.activate_revision(uow, principal, revision_id)
    except MappingInvalid as exc:
        return invalid_mapping(exc, root="document")
    return MappingOut.of_stored(activated)


@router.post(
    "/dry-run",
    summary="Which actions a report fires, rendered; nothing sent (admin)",
    responses={
        **INVALID,
        404: {"model": ErrorResponse, "description": "no such report in this organization"},
    },
    response_model=DryRunOut,
)
async def dry_run(body: DryRunIn, principal: AdminDep, uow: ReadUowDep) -> Any:
    """Give a stored report (`report_id`) or an inline one (`report`), and optionally a
    draft `document` to try instead of the active mapping. The answer lists every action
    in rule order: emails with From, recipients, subject, bodies and the PDF's file name;
    webhooks with their payload; failures with every problem's path. Nothing is sent,
    queued or stored."""
    try:
        run = await mapping.dry_run(
            uow,
            principal,
            trigger=body.trigger,
            report_id=body.report_id,
            inline=body.report.to_inline() if body.report is not None else None,
            document=body.document,
        )
    except MappingInvalid as exc:
        return invalid_mapping(exc, root="document")
    return DryRunOut.of(run, draft=body.document is not None)
