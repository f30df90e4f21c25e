"""The Events pages: the list (status, languages) and one event with its questionnaire,
the follow-up template per language (form, errors at their field with the line, a live
preview), the media library (upload, delete) and the bulk follow-up of chosen reports:
a confirmation naming who will be mailed and who skipped, then Post/Redirect/Get to the
result by lead name (:mod:`~visitmail.web.ui.bulk_view`) with a progress bar over the
outbox.

Thin: each route parses the form and calls one use case of :mod:`visitmail.services`
(``events``, ``follow_ups``, ``reports``, ``outbox``). Reading needs ``event_curator`` or
higher (the 403 page otherwise), saving a template ``event_manager``; another
organization's event is the 404 page. The preview and the progress answer JSON for
``static/events.js``.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from visitmail.domain.errors import InvalidInput, PermissionDenied, VisitmailError
from visitmail.domain.events import (
    MAX_MEDIA_BYTES,
    Event,
    MediaTooLarge,
    UnsupportedMedia,
)
from visitmail.domain.follow_up import FollowUpStatus, FollowUpTemplate, FollowUpTemplateSpec
from visitmail.services import events, follow_up_review, follow_ups, outbox, reports
from visitmail.web.api.follow_ups import SendersDep
from visitmail.web.deps import RuntimeDep
from visitmail.web.errors import error_body, status_for
from visitmail.web.ui.bulk_view import BulkView, open_bulk, review_view, seal_bulk
from visitmail.web.ui.mapping_pages import SAMPLE_LEAD
from visitmail.web.ui.outbox_pages import csrf_failed, error_page
from visitmail.web.ui.pages import render, templates, to_login
from visitmail.web.ui.session import UiSession, current_session, tokens_match
from visitmail.web.ui.template_placeholders import placeholder_groups

router = APIRouter(include_in_schema=False)

# base.html shows the "Events" link to whoever may open these pages.
templates.env.globals["events_read_role"] = events.CURATE_ROLE

READ_ROLE = events.CURATE_ROLE
CURATORS_ONLY = "The events pages are open to event curators, managers and admins."
NO_EVENT = "No such event in this organization."
EVENT_REPORTS = 200
CsrfForm = Annotated[str, Form(max_length=200)]
NOTICES = {
    "uploaded": "The file was added to the media library.",
    "deleted": "The file was deleted from the media library.",
    "created": "The event was created.",
    "updated": "The event was saved.",
}


def _parse_uuid(value: str) -> UUID | None:
    try:
        return UUID(value)
    except ValueError:
        return None


def _field(name: str | None) -> str:
    """The form field an error belongs to (``attachments[2]`` is the attachments choice)."""
    if not name:
        return "form"
    return "attachments" if name.startswith("attachments") else name


def _template_form(template: FollowUpTemplate | None) -> dict[str, Any]:
    if template is None:
        return {
            "subject": "",
            "text": "",
            "html": "",
            "attachments": [],
            "reply_to_reporter": True,
            "bcc_reporter": False,
            "saved": False,
        }
    spec = template.spec
    return {
        "subject": spec.subject,
        "text": spec.text,
        "html": spec.html or "",
        "attachments": [str(a) for a in spec.attachments],
        "reply_to_reporter": spec.reply_to_reporter,
        "bcc_reporter": spec.bcc_reporter,
        "saved": True,
    }


def _spec_of(form: FormData) -> FollowUpTemplateSpec:
    """The template spec in a submitted form; :class:`InvalidInput` on ``attachments``."""
    chosen: list[UUID] = []
    for value in form.getlist("attachments"):
        parsed = _parse_uuid(str(value))
        if parsed is None:
            raise InvalidInput("choose files of the media library", field="attachments")
        chosen.append(parsed)
    html = str(form.get("html") or "")
    return FollowUpTemplateSpec(
        subject=str(form.get("subject") or ""),
        text=str(form.get("text") or ""),
        html=html or None,
        attachments=tuple(chosen),
        reply_to_reporter=form.get("reply_to_reporter") == "on",
        bcc_reporter=form.get("bcc_reporter") == "on",
    )


def _form_values(form: FormData) -> dict[str, Any]:
    return {
        "subject": str(form.get("subject") or ""),
        "text": str(form.get("text") or ""),
        "html": str(form.get("html") or ""),
        "attachments": [str(v) for v in form.getlist("attachments")],
        "reply_to_reporter": form.get("reply_to_reporter") == "on",
        "bcc_reporter": form.get("bcc_reporter") == "on",
        "saved": False,
    }


async def _session_or_response(request: Request, runtime: RuntimeDep) -> UiSession | Response:
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    if not session.principal.role.at_least(READ_ROLE):
        return error_page(request, session, 403, CURATORS_ONLY)
    return session


@router.get("/events")
async def events_list(request: Request, runtime: RuntimeDep) -> Response:
    guarded = await _session_or_response(request, runtime)
    if not isinstance(guarded, UiSession):
        return guarded
    async with runtime.uow() as uow:
        found = await events.list_events(uow, guarded.principal)
    return render(
        request,
        "events.html",
        guarded,
        events=found,
        can_create=guarded.principal.role.at_least(events.MANAGE_ROLE),
    )


async def _event_page(
    request: Request,
    runtime: RuntimeDep,
    session: UiSession,
    event_id: str,
    *,
    status: int = 200,
    notice: str | None = None,
    forms: dict[str, dict[str, Any]] | None = None,
    errors: dict[str, dict[str, str]] | None = None,
    media_error: str | None = None,
    bulk: BulkView | None = None,
    bulk_expired: bool = False,
    bulk_error: str | None = None,
) -> HTMLResponse:
    parsed = _parse_uuid(event_id)
    if parsed is None:
        return error_page(request, session, 404, NO_EVENT)
    principal = session.principal
    try:
        async with runtime.uow() as uow:
            event = await events.get_event(uow, principal, parsed)
            stored = await follow_ups.list_templates(uow, principal, parsed)
            media = await events.list_media(uow, principal, parsed)
            event_reports = await reports.list_reports(
                uow, principal, event_id=parsed, limit=EVENT_REPORTS
            )
    except VisitmailError as exc:
        code = status_for(exc)
        return error_page(request, session, code, NO_EVENT if code == 404 else exc.message)
    by_language = {t.language: t for t in stored}
    all_forms = {lang: _template_form(by_language.get(lang)) for lang in event.languages}
    all_forms.update(forms or {})
    return render(
        request,
        "event.html",
        session,
        status=status,
        event=event,
        questions=_question_rows(event),
        forms=all_forms,
        placeholders={lang: placeholder_groups(event, lang) for lang in event.languages},
        errors=errors or {},
        media=media,
        media_error=media_error,
        max_media_mb=MAX_MEDIA_BYTES // (1024 * 1024),
        reports=event_reports,
        bulk=bulk,
        bulk_expired=bulk_expired,
        bulk_error=bulk_error,
        bulk_limit=EVENT_REPORTS,
        notice=notice,
        can_write=principal.role.at_least(follow_ups.WRITE_ROLE),
        can_curate=principal.role.at_least(events.CURATE_ROLE),
    )


def _question_rows(event: Event) -> list[dict[str, str]]:
    rows = []
    for q in event.questions:
        label = next(iter(q.label.values()), q.key) if q.label else q.key
        options = ", ".join(
            next(iter(o.label.values()), o.key) if o.label else o.key for o in q.options
        )
        rows.append({"key": q.key, "label": label, "type": q.type.value, "options": options})
    return rows


@router.get("/events/{event_id}")
async def event_page(
    request: Request, runtime: RuntimeDep, event_id: str, done: str = "", result: str = ""
) -> Response:
    """The event; ``done`` names a short notice, ``result`` carries a bulk follow-up's
    result after its redirect (:mod:`~visitmail.web.ui.bulk_view`)."""
    guarded = await _session_or_response(request, runtime)
    if not isinstance(guarded, UiSession):
        return guarded
    notice = NOTICES.get(done)
    if done.startswith("saved-"):
        notice = f"The follow-up template in '{done.removeprefix('saved-')[:16]}' was saved."
    parsed = _parse_uuid(event_id)
    bulk = await open_bulk(runtime, guarded, parsed, result) if result and parsed else None
    return await _event_page(
        request,
        runtime,
        guarded,
        event_id,
        notice=notice,
        bulk=bulk,
        bulk_expired=bool(result) and bulk is None,
    )


@router.post("/events/{event_id}/templates/{language}")
async def template_save(
    request: Request, runtime: RuntimeDep, event_id: str, language: str
) -> Response:
    guarded = await _session_or_response(request, runtime)
    if not isinstance(guarded, UiSession):
        return guarded
    form = await request.form()
    if not tokens_match(guarded.csrf_token, str(form.get("csrf_token") or "")):
        return csrf_failed(request, guarded)
    parsed = _parse_uuid(event_id)
    if parsed is None:
        return error_page(request, guarded, 404, NO_EVENT)
    try:
        spec = _spec_of(form)
        async with runtime.uow() as uow:
            await follow_ups.put_template(uow, guarded.principal, parsed, language, spec)
    except PermissionDenied:
        return error_page(
            request, guarded, 403, "Only event managers and admins change follow-up templates."
        )
    except VisitmailError as exc:
        code = status_for(exc)
        if code == 404:
            return error_page(request, guarded, 404, NO_EVENT)
        return await _event_page(
            request,
            runtime,
            guarded,
            event_id,
            status=code,
            forms={language: _form_values(form)},
            errors={language: {_field(exc.field): exc.message}},
        )
    return RedirectResponse(f"/events/{parsed}?done=saved-{language}", status_code=303)


def _json_error(code: str, message: str, status: int, field: str | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message, field), status_code=status)


@router.post("/events/{event_id}/templates/{language}/preview")
async def template_preview(
    request: Request, runtime: RuntimeDep, event_id: str, language: str
) -> Response:
    """The unsaved template in the form rendered for ``report_id`` (a report of the event)
    or the sample lead; JSON ``{subject, text, html}`` or the error shape. Nothing is sent."""
    session = await current_session(request, runtime)
    if session is None:
        return _json_error("not_authenticated", "Your session ended: log in again.", 401)
    if not session.principal.role.at_least(READ_ROLE):
        return _json_error("forbidden", CURATORS_ONLY, 403)
    form = await request.form()
    token = request.headers.get("x-csrf-token") or str(form.get("csrf_token") or "")
    if not tokens_match(session.csrf_token, token):
        return _json_error("csrf_failed", "The page expired (CSRF check failed): reload it.", 403)
    parsed = _parse_uuid(event_id)
    report_text = str(form.get("report_id") or "")
    report_id = _parse_uuid(report_text) if report_text else None
    if parsed is None or (report_text and report_id is None):
        return _json_error("not_found", "no such event or report", 404)
    try:
        spec = _spec_of(form)
        async with runtime.uow() as uow:
            rendered = await follow_ups.preview_template(
                uow,
                session.principal,
                parsed,
                language,
                report_id=report_id,
                lead=None if report_id else {**SAMPLE_LEAD, "language": language},
                spec=spec,
            )
    except VisitmailError as exc:
        return _json_error(exc.code, exc.message, status_for(exc), exc.field)
    return JSONResponse({"subject": rendered.subject, "text": rendered.text, "html": rendered.html})


@router.post("/events/{event_id}/media")
async def media_upload(
    request: Request,
    runtime: RuntimeDep,
    event_id: str,
    file: Annotated[UploadFile | None, File()] = None,
    title: Annotated[str, Form(max_length=400)] = "",
    csrf_token: CsrfForm = "",
) -> Response:
    guarded = await _session_or_response(request, runtime)
    if not isinstance(guarded, UiSession):
        return guarded
    if not tokens_match(guarded.csrf_token, csrf_token):
        return csrf_failed(request, guarded)
    parsed = _parse_uuid(event_id)
    if parsed is None:
        return error_page(request, guarded, 404, NO_EVENT)
    try:
        if file is None or not file.filename:
            raise InvalidInput("choose a file to upload", field="file")
        data = await file.read(MAX_MEDIA_BYTES + 1)
        if len(data) > MAX_MEDIA_BYTES:
            raise MediaTooLarge(
                f"the file is larger than {MAX_MEDIA_BYTES // (1024 * 1024)} MB", field="file"
            )
        async with runtime.uow() as uow:
            await events.add_media(
                uow,
                guarded.principal,
                parsed,
                filename=file.filename,
                data=data,
                title=title or None,
            )
    except VisitmailError as exc:
        code = status_for(exc)
        if code == 404:
            return error_page(request, guarded, 404, NO_EVENT)
        # the API's statuses: 413 too large, 415 not a PDF or image
        if isinstance(exc, MediaTooLarge):
            code = 413
        elif isinstance(exc, UnsupportedMedia):
            code = 415
        return await _event_page(
            request, runtime, guarded, event_id, status=code, media_error=exc.message
        )
    return RedirectResponse(f"/events/{parsed}?done=uploaded", status_code=303)


@router.post("/events/{event_id}/media/{media_id}/delete")
async def media_delete(
    request: Request,
    runtime: RuntimeDep,
    event_id: str,
    media_id: str,
    csrf_token: CsrfForm = "",
) -> Response:
    guarded = await _session_or_response(request, runtime)
    if not isinstance(guarded, UiSession):
        return guarded
    if not tokens_match(guarded.csrf_token, csrf_token):
        return csrf_failed(request, guarded)
    parsed, media = _parse_uuid(event_id), _parse_uuid(media_id)
    if parsed is None or media is None:
        return error_page(request, guarded, 404, "No such event or media file.")
    try:
        async with runtime.uow() as uow:
            await events.delete_media(uow, guarded.principal, parsed, media)
    except VisitmailError as exc:
        code = status_for(exc)
        if code == 404:
            return error_page(request, guarded, 404, "No such event or media file.")
        return await _event_page(
            request, runtime, guarded, event_id, status=code, media_error=exc.message
        )
    return RedirectResponse(f"/events/{parsed}?done=deleted", status_code=303)


@router.post("/events/{event_id}/follow-ups")
async def bulk_follow_up(
    request: Request, runtime: RuntimeDep, event_id: str, senders: SendersDep
) -> Response:
    """Two steps, both without JavaScript. Without ``confirm=yes``: the confirmation page,
    which names each chosen lead and what will happen (mailed, or skipped and why) and sends
    nothing. With it: queue the follow-ups and redirect (303) to the event page, whose
    ``result`` shows each lead's outcome and a progress bar over the queued messages; a
    reload shows the result again and sends nothing."""
    guarded = await _session_or_response(request, runtime)
    if not isinstance(guarded, UiSession):
        return guarded
    form = await request.form()
    if not tokens_match(guarded.csrf_token, str(form.get("csrf_token") or "")):
        return csrf_failed(request, guarded)
    parsed = _parse_uuid(event_id)
    if parsed is None:
        return error_page(request, guarded, 404, NO_EVENT)
    ids = [_parse_uuid(str(v)) for v in form.getlist("report_ids")]
    chosen = list(dict.fromkeys(i for i in ids if i is not None))
    problem = None
    if not chosen:
        problem = "Choose at least one report."
    elif len(chosen) > EVENT_REPORTS:
        problem = f"Choose at most {EVENT_REPORTS} reports at once."
    if problem:
        return await _event_page(
            request, runtime, guarded, event_id, status=422, bulk_error=problem
        )
    try:
        async with runtime.uow() as uow:
            event = await events.get_event(uow, guarded.principal, parsed)
            if form.get("confirm") != "yes":
                review = await follow_up_review.review_bulk(uow, guarded.principal, chosen)
                return _confirm_page(request, guarded, event, review)
            result = await follow_ups.bulk_follow_up(
                uow, guarded.principal, chosen, senders=senders
            )
    except PermissionDenied:
        return error_page(request, guarded, 403, CURATORS_ONLY)
    except VisitmailError as exc:
        code = status_for(exc)
        if code == 404:
            return error_page(request, guarded, 404, NO_EVENT)
        return await _event_page(
            request, runtime, guarded, event_id, status=code, bulk_error=exc.message
        )
    token = seal_bulk(runtime, guarded, parsed, result)
    return RedirectResponse(
        f"/events/{parsed}?{urlencode({'result': token})}#bulk-result", status_code=303
    )


def _confirm_page(
    request: Request, session: UiSession, event: Event, review: follow_up_review.BulkReview
) -> HTMLResponse:
    view = review_view(review)
    return render(
        request,
        "event_bulk_confirm.html",
        session,
        event=event,
        view=view,
        will_send=review.count(FollowUpStatus.QUEUED),
        skipped={
            status.value: review.count(status)
            for status in (
                FollowUpStatus.NO_CONSENT,
                FollowUpStatus.ALREADY_SENT,
                FollowUpStatus.SUPPRESSED,
                FollowUpStatus.NO_TEMPLATE,
            )
            if review.count(status)
        },
        failing=review.count(FollowUpStatus.ERROR),
        configured=review.configured,
    )


@router.get("/events/{event_id}/follow-ups/progress")
async def bulk_progress(
    request: Request, runtime: RuntimeDep, event_id: str, ids: str = ""
) -> Response:
    """``{"total", "done", "counts": {status: n}}`` over the given outbox message ids (at
    most :data:`follow_ups.MAX_BULK`); ``done`` counts the messages in a final state. An
    id that is not a message of this organization counts as ``missing``."""
    session = await current_session(request, runtime)
    if session is None:
        return _json_error("not_authenticated", "Your session ended: log in again.", 401)
    if not session.principal.role.at_least(outbox.READ_ROLE):
        return _json_error("forbidden", CURATORS_ONLY, 403)
    parsed = [_parse_uuid(p) for p in ids.split(",") if p.strip()][: follow_ups.MAX_BULK]
    counts: Counter[str] = Counter()
    done = 0
    async with runtime.uow() as uow:
        for message_id in parsed:
            try:
                if message_id is None:
                    raise InvalidInput("not a message id")
                message = await outbox.get_message(uow, session.principal, message_id)
            except VisitmailError:
                counts["missing"] += 1
                done += 1
                continue
            counts[message.status.value] += 1
            done += message.status.final
    return JSONResponse({"total": len(parsed), "done": done, "counts": dict(counts)})
