"""The Outbox pages: counts per status, a filterable list, one message with its recipients
and every attempt, and the admin's retry and cancel forms.

Thin: parse the query or the form, call one service of :mod:`visitmail.services.outbox`,
render the result. Reading needs ``event_curator`` or higher, retry and cancel ``admin``
(the 403 page otherwise); another organization's message is the 404 page; a state that
forbids the action (409) is shown as a message on the detail page.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from visitmail.adapters.db.outbox_content import SqlMessageContents
from visitmail.domain.errors import PermissionDenied, VisitmailError
from visitmail.domain.mail_view import ascii_filename
from visitmail.domain.outbox import MessageKind, MessageStatus
from visitmail.services import delivery_events, outbox, outbox_detail
from visitmail.web.deps import RuntimeDep
from visitmail.web.errors import status_for
from visitmail.web.ui.pages import render, templates, to_login
from visitmail.web.ui.session import UiSession, current_session, tokens_match

router = APIRouter(include_in_schema=False)

# base.html shows the "Outbox" link to whoever may read it (the service's rule, not a copy).
templates.env.globals["outbox_read_role"] = outbox.READ_ROLE

PAGE_SIZE = 50
NOTICES = {
    "retried": "The message is queued for delivery again.",
    "cancelled": "The message was cancelled; no worker will send it.",
}
ACTIONS = ("retry", "cancel")
NO_MESSAGE = "No such message in this organization."
READ_FORBIDDEN = "The outbox is open to event curators, managers and admins."
ACT_FORBIDDEN = "Only admins retry or cancel messages."


def error_page(
    request: Request, session: UiSession | None, status: int, message: str
) -> HTMLResponse:
    return render(request, "error.html", session, status=status, message=message)


def csrf_failed(request: Request, session: UiSession | None) -> HTMLResponse:
    return error_page(
        request,
        session,
        403,
        "The form expired or was not sent from this site (CSRF check failed). "
        "Reload the page and try again.",
    )


def _parse_uuid(value: str) -> UUID | None:
    try:
        return UUID(value)
    except ValueError:
        return None


@router.get("/outbox")
async def outbox_list(
    request: Request,
    runtime: RuntimeDep,
    status: str = "",
    kind: str = "",
    page: str = "1",
) -> Response:
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    errors: dict[str, str] = {}
    chosen_status: MessageStatus | None = None
    chosen_kind: MessageKind | None = None
    try:
        chosen_status = MessageStatus(status) if status else None
    except ValueError:
        errors["status"] = "Choose one of the listed statuses."
    try:
        chosen_kind = MessageKind(kind) if kind else None
    except ValueError:
        errors["kind"] = "Choose one of the listed kinds."
    number = max(1, min(int(page), 10_000)) if page.isdecimal() and len(page) < 6 else 1
    try:
        async with runtime.uow() as uow:
            counts = await outbox.counts(uow, session.principal)
            messages = await outbox.list_messages(
                uow,
                session.principal,
                status=chosen_status,
                kind=chosen_kind,
                limit=PAGE_SIZE + 1,
                offset=(number - 1) * PAGE_SIZE,
            )
    except PermissionDenied:
        return error_page(
            request, session, 403, "The outbox is open to event curators, managers and admins."
        )
    return render(
        request,
        "outbox.html",
        session,
        status=422 if errors else 200,
        counts=[(s, counts.get(s, 0)) for s in MessageStatus],
        total=sum(counts.values()),
        messages=messages[:PAGE_SIZE],
        has_next=len(messages) > PAGE_SIZE,
        page=number,
        statuses=list(MessageStatus),
        kinds=list(MessageKind),
        filters={"status": status, "kind": kind},
        errors=errors,
    )


async def _detail(
    request: Request,
    runtime: RuntimeDep,
    session: UiSession,
    message_id: str,
    *,
    status: int = 200,
    notice: str | None = None,
    problem: str | None = None,
    confirm_cancel: bool = False,
) -> HTMLResponse:
    parsed = _parse_uuid(message_id)
    try:
        if parsed is None:
            raise _Missing
        async with runtime.uow(read_only=True) as uow:
            detail = await outbox_detail.message_detail(
                uow, SqlMessageContents(uow.session), session.principal, parsed
            )
            came_back = await delivery_events.message_events(
                uow, session.principal.organization_id, parsed
            )
    except (VisitmailError, _Missing) as exc:
        code = status_for(exc) if isinstance(exc, VisitmailError) else 404
        text = NO_MESSAGE if code == 404 else str(exc)
        if code == 403:
            text = READ_FORBIDDEN
        return error_page(request, session, code, text)
    return render(
        request,
        "outbox_message.html",
        session,
        status=status,
        message=detail.message,
        mail=detail.mail,
        report_id=detail.report_id,
        came_back=came_back,
        can_act=session.principal.role.at_least(outbox.ACT_ROLE),
        can_retry=detail.can_retry,
        can_cancel=detail.can_cancel,
        confirm_cancel=confirm_cancel,
        notice=notice,
        problem=problem,
    )


class _Missing(Exception):
    pass


@router.get("/outbox/{message_id}")
async def outbox_message(
    request: Request, runtime: RuntimeDep, message_id: str, done: str = ""
) -> Response:
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    return await _detail(request, runtime, session, message_id, notice=NOTICES.get(done))


# The HTML part is its own document, framed by the detail page in a sandbox without
# scripts: nothing may load (default-src 'none') but its inline styles and data: images,
# and only this app may frame it.
HTML_PART_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'; sandbox"
)
# Types a browser could run as a page of this site are downloaded as plain bytes.
_ACTIVE_TYPES = ("text/html", "application/xhtml+xml", "image/svg+xml", "text/xml")


@router.get("/outbox/{message_id}/body.html")
async def outbox_message_html(request: Request, runtime: RuntimeDep, message_id: str) -> Response:
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    parsed = _parse_uuid(message_id)
    if parsed is None:
        return error_page(request, session, 404, NO_MESSAGE)
    try:
        async with runtime.uow(read_only=True) as uow:
            html = await outbox_detail.message_html(
                SqlMessageContents(uow.session), session.principal, parsed
            )
    except VisitmailError as exc:
        code = status_for(exc)
        return error_page(request, session, code, READ_FORBIDDEN if code == 403 else NO_MESSAGE)
    return HTMLResponse(
        html,
        headers={
            "Content-Security-Policy": HTML_PART_POLICY,
            "X-Frame-Options": "SAMEORIGIN",
            "Cache-Control": "private, no-store",
        },
    )


@router.get("/outbox/{message_id}/attachments/{index}")
async def outbox_attachment(
    request: Request, runtime: RuntimeDep, message_id: str, index: str
) -> Response:
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    parsed = _parse_uuid(message_id)
    number = int(index) if index.isdecimal() and len(index) < 4 else None
    if parsed is None or number is None:
        return error_page(request, session, 404, "No such attachment.")
    try:
        async with runtime.uow(read_only=True) as uow:
            info, data = await outbox_detail.message_attachment(
                SqlMessageContents(uow.session), session.principal, parsed, number
            )
    except VisitmailError as exc:
        code = status_for(exc)
        text = READ_FORBIDDEN if code == 403 else "No such attachment."
        return error_page(request, session, code, text)
    kind = "application/octet-stream" if info.content_type in _ACTIVE_TYPES else info.content_type
    name = ascii_filename(info.filename, fallback=f"attachment-{number + 1}")
    return Response(
        data,
        media_type=kind,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "private, no-store",
        },
    )


@router.post("/outbox/{message_id}/{action}")
async def outbox_action(
    request: Request,
    runtime: RuntimeDep,
    message_id: str,
    action: str,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    confirm: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    if not tokens_match(session.csrf_token, csrf_token):
        return csrf_failed(request, session)
    parsed = _parse_uuid(message_id)
    if action not in ACTIONS or parsed is None:
        return error_page(request, session, 404, NO_MESSAGE)
    if action == "cancel" and confirm != "yes":
        # The confirmation step (no script needed): the detail with the question open.
        if not session.principal.role.at_least(outbox.ACT_ROLE):
            return error_page(request, session, 403, ACT_FORBIDDEN)
        return await _detail(request, runtime, session, message_id, confirm_cancel=True)
    try:
        async with runtime.uow() as uow:
            if action == "retry":
                await outbox.retry_message(uow, session.principal, parsed)
            else:
                await outbox.cancel_message(uow, session.principal, parsed)
    except PermissionDenied:
        return error_page(request, session, 403, ACT_FORBIDDEN)
    except VisitmailError as exc:
        code = status_for(exc)
        if code == 404:
            return error_page(request, session, 404, NO_MESSAGE)
        return await _detail(
            request, runtime, session, message_id, status=code, problem=exc.message
        )
    done = "retried" if action == "retry" else "cancelled"
    return RedirectResponse(f"/outbox/{parsed}?done={done}", status_code=303)
