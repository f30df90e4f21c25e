"""The dev inbox pages (only with ``serve --dev-inbox``): what the local sink received from
the viewer's organization.

Thin: the service decides whose mail is whose (:mod:`visitmail.services.dev_inbox`). Only
admins read it (the 403 page otherwise; the nav link is shown to admins only); another
organization's mail is the 404 page, like a name that does not exist.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from visitmail.adapters.devinbox.sink import Mailbox
from visitmail.domain.errors import VisitmailError
from visitmail.services import dev_inbox
from visitmail.web.deps import RuntimeDep
from visitmail.web.errors import status_for
from visitmail.web.ui.pages import render, templates, to_login
from visitmail.web.ui.session import UiSession, current_session

router = APIRouter(include_in_schema=False)

# base.html shows the "Dev inbox" link to whoever may read it (the service's rule).
templates.env.globals["dev_inbox_read_role"] = dev_inbox.READ_ROLE

_MESSAGES = {
    403: "Only admins read the dev inbox: it holds every notification and follow-up.",
    404: "No such message.",
}


def _mailbox(request: Request) -> Mailbox | None:
    box: Mailbox | None = getattr(request.app.state, "dev_inbox", None)
    return box


def _error(request: Request, session: UiSession, exc: VisitmailError) -> Response:
    status = status_for(exc)
    message = _MESSAGES.get(status, exc.message)
    return render(request, "error.html", session, status=status, message=message)


def _not_running(request: Request, session: UiSession) -> Response:
    return render(
        request,
        "error.html",
        session,
        status=404,
        message="The dev inbox runs only with `visitmail serve --dev-inbox`.",
    )


@router.get("/dev-inbox")
async def inbox(request: Request, runtime: RuntimeDep) -> Response:
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    box = _mailbox(request)
    if box is None:
        return _not_running(request, session)
    try:
        async with runtime.uow(read_only=True) as uow:
            mails = await dev_inbox.list_mail(uow, box, session.principal)
    except VisitmailError as exc:
        return _error(request, session, exc)
    return render(
        request, "dev_inbox.html", session, mails=mails, port=request.app.state.dev_inbox_port
    )


@router.get("/dev-inbox/{name}")
async def one(request: Request, runtime: RuntimeDep, name: str) -> Response:
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    box = _mailbox(request)
    if box is None:
        return _not_running(request, session)
    try:
        async with runtime.uow(read_only=True) as uow:
            message = await dev_inbox.open_mail(uow, box, session.principal, name)
    except VisitmailError as exc:
        return _error(request, session, exc)
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    attachments = [
        {
            "filename": part.get_filename() or "(unnamed)",
            "type": part.get_content_type(),
            "size": len(part.get_payload(decode=True) or b""),
        }
        for part in message.iter_attachments()
    ]
    headers = [(k, str(v)) for k, v in message.items() if not k.startswith("X-Dev-Inbox")]
    return render(
        request,
        "dev_inbox_mail.html",
        session,
        mail_name=name,
        headers=headers,
        text=text_part.get_content() if text_part else None,
        html=html_part.get_content() if html_part else None,
        attachments=attachments,
    )
