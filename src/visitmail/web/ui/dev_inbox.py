"""The dev inbox pages (only with ``serve --dev-inbox``): what the local sink received."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from visitmail.adapters.devinbox.sink import Mailbox
from visitmail.web.deps import RuntimeDep
from visitmail.web.ui.pages import render, to_login
from visitmail.web.ui.session import current_session

router = APIRouter(include_in_schema=False)


def _mailbox(request: Request) -> Mailbox | None:
    box: Mailbox | None = getattr(request.app.state, "dev_inbox", None)
    return box


@router.get("/dev-inbox")
async def inbox(request: Request, runtime: RuntimeDep) -> Response:
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    box = _mailbox(request)
    if box is None:
        return render(
            request,
            "error.html",
            session,
            status=404,
            message="The dev inbox runs only with `visitmail serve --dev-inbox`.",
        )
    return render(
        request, "dev_inbox.html", session, mails=box.list(), port=request.app.state.dev_inbox_port
    )


@router.get("/dev-inbox/{name}")
async def one(request: Request, runtime: RuntimeDep, name: str) -> Response:
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    box = _mailbox(request)
    try:
        if box is None:
            raise KeyError(name)
        message = box.parse(name)
    except KeyError:
        return render(request, "error.html", session, status=404, message="No such message.")
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
