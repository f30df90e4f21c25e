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

from visitmail.domain.errors import PermissionDenied, VisitmailError
from visitmail.domain.outbox import MessageKind, MessageStatus
from visitmail.services import outbox
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
) -> HTMLResponse:
    parsed = _parse_uuid(message_id)
    try:
        if parsed is None:
            raise _Missing
        async with runtime.uow() as uow:
            message = await outbox.get_message(uow, session.principal, parsed)
    except (VisitmailError, _Missing) as exc:
        code = status_for(exc) if isinstance(exc, VisitmailError) else 404
        text = "No such message in this organization." if code == 404 else str(exc)
        if code == 403:
            text = "The outbox is open to event curators, managers and admins."
        return error_page(request, session, code, text)
    return render(
        request,
        "outbox_message.html",
        session,
        status=status,
        message=message,
        can_act=session.principal.role.at_least(outbox.ACT_ROLE),
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


@router.post("/outbox/{message_id}/{action}")
async def outbox_action(
    request: Request,
    runtime: RuntimeDep,
    message_id: str,
    action: str,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    if not tokens_match(session.csrf_token, csrf_token):
        return csrf_failed(request, session)
    parsed = _parse_uuid(message_id)
    if action not in ACTIONS or parsed is None:
        return error_page(request, session, 404, "No such message in this organization.")
    try:
        async with runtime.uow() as uow:
            if action == "retry":
                await outbox.retry_message(uow, session.principal, parsed)
            else:
                await outbox.cancel_message(uow, session.principal, parsed)
    except PermissionDenied:
        return error_page(request, session, 403, "Only admins retry or cancel messages.")
    except VisitmailError as exc:
        code = status_for(exc)
        if code == 404:
            return error_page(request, session, 404, "No such message in this organization.")
        return await _detail(
            request, runtime, session, message_id, status=code, problem=exc.message
        )
    done = "retried" if action == "retry" else "cancelled"
    return RedirectResponse(f"/outbox/{parsed}?done={done}", status_code=303)
