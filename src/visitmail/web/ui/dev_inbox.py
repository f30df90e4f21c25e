"""The dev inbox pages (only with ``serve --dev-inbox``): what the local sink received from
the viewer's organization, like Mailpit.

- ``GET /dev-inbox``: newest first, search (``q``) and pages; delete all (confirmed).
- ``GET /dev-inbox/{name}?view=html|text|headers``: one mail, its views as links (tabs that
  need no script), its attachments (open, download) and the raw ``.eml``; delete.
- ``GET /dev-inbox/{name}/html``: the HTML body alone, for the page's ``sandbox`` iframe
  (no ``allow-scripts``, no ``allow-same-origin``). Its own Content-Security-Policy
  (:data:`HTML_BODY_POLICY`) allows inline styles and ``data:`` images only: no script,
  no remote image, font, form or frame; ``sandbox`` in the policy keeps it sandboxed even
  when opened on its own, and ``frame-ancestors 'self'`` (with ``X-Frame-Options:
  SAMEORIGIN``) lets only the inbox page frame it.
- ``GET /dev-inbox/{name}/attachments/{index}``: PDF and raster images open in the browser
  (``inline``), everything else (and ``?download=1``) is a download; always ``nosniff``.
- ``GET /dev-inbox/{name}/raw``: the message as received, ``message/rfc822``.
- ``POST /dev-inbox/{name}/delete`` and ``POST /dev-inbox/delete-all``: CSRF-checked,
  confirmed in a ``<details>`` first, then Post/Redirect/Get.

Thin: the service decides whose mail is whose (:mod:`visitmail.services.dev_inbox`). Only
admins read it (the 403 page otherwise; the nav link is shown to admins only); another
organization's mail is the 404 page, like a name that does not exist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from visitmail.adapters.devinbox.sink import Mailbox
from visitmail.domain.errors import InvalidInput, VisitmailError
from visitmail.domain.identity import Principal
from visitmail.services import dev_inbox
from visitmail.services import dev_inbox_content as content_of
from visitmail.services.outbox_ports import OutboxUnitOfWork
from visitmail.web.deps import RuntimeDep
from visitmail.web.errors import status_for
from visitmail.web.ui.outbox_pages import csrf_failed
from visitmail.web.ui.pages import render, templates, to_login
from visitmail.web.ui.session import UiSession, current_session, tokens_match

router = APIRouter(include_in_schema=False)

# base.html shows the "Dev inbox" link to whoever may read it (the service's rule).
templates.env.globals["dev_inbox_read_role"] = dev_inbox.READ_ROLE


def size_label(size: int) -> str:
    """``812 B``, ``4.2 KB``, ``1.3 MB`` (1 KB = 1,000 bytes, as file managers show)."""
    if size < 1000:
        return f"{size} B"
    if size < 1_000_000:
        return f"{size / 1000:.1f} KB"
    return f"{size / 1_000_000:.1f} MB"


templates.env.filters["dev_inbox_size"] = size_label

PAGE_SIZE = 25
VIEWS = ("html", "text", "headers")
HTML_BODY_POLICY = (
    "default-src 'none'; img-src data: cid:; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'; sandbox"
)
# A mail's content is private to the organization: no shared cache keeps a copy.
_PRIVATE = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}
_MESSAGES = {
    403: "Only admins read the dev inbox: it holds every notification and follow-up.",
    404: "No such message.",
}
NOTICES = {
    "deleted": "The message was deleted.",
    "cleared": "Your organization's mail was deleted.",
}


def _mailbox(request: Request) -> Mailbox | None:
    box: Mailbox | None = getattr(request.app.state, "dev_inbox", None)
    return box


def _error(request: Request, session: UiSession, exc: VisitmailError) -> Response:
    status = status_for(exc)
    message = _MESSAGES.get(status, exc.message)
    if exc.field == "attachment":
        message = "No such attachment."
    return render(request, "error.html", session, status=status, message=message)


def _not_running(request: Request, session: UiSession) -> Response:
    return render(
        request,
        "error.html",
        session,
        status=404,
        message="The dev inbox runs only with `visitmail serve --dev-inbox`.",
    )


async def _open(request: Request, runtime: RuntimeDep) -> tuple[UiSession, Mailbox] | Response:
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    box = _mailbox(request)
    if box is None:
        return _not_running(request, session)
    return session, box


_T = TypeVar("_T")
# What a page asks of the service: the organization's mail, through one unit of work.
_Load = Callable[[OutboxUnitOfWork, Mailbox, Principal], Awaitable[_T]]


def _mail_named(
    call: Callable[[OutboxUnitOfWork, Mailbox, Principal, str], Awaitable[_T]], name: str
) -> _Load[_T]:
    """``call`` bound to one mail's ``name`` (the service's per-mail functions)."""

    async def load(uow: OutboxUnitOfWork, box: Mailbox, principal: Principal) -> _T:
        return await call(uow, box, principal, name)

    return load


async def _load(
    request: Request, runtime: RuntimeDep, load: _Load[_T], *, csrf_token: str | None = None
) -> tuple[UiSession, Mailbox, _T] | Response:
    """The signed-in viewer, the mailbox and what ``load`` returns for the viewer's
    organization; else the page to answer with: the login redirect, "not running", the
    CSRF failure (when ``csrf_token`` is given, for actions) or the service's error page
    (403 for non-admins, 404 for an unknown or another organization's mail)."""
    opened = await _open(request, runtime)
    if isinstance(opened, Response):
        return opened
    session, box = opened
    if csrf_token is not None and not tokens_match(session.csrf_token, csrf_token):
        return csrf_failed(request, session)
    try:
        async with runtime.uow(read_only=True) as uow:
            result = await load(uow, box, session.principal)
    except VisitmailError as exc:
        return _error(request, session, exc)
    return session, box, result


def _page_number(page: str) -> int:
    return max(1, min(int(page), 100_000)) if page.isdecimal() and len(page) < 7 else 1


def content_disposition(kind: str, filename: str) -> str:
    """``inline`` or ``attachment`` with an ASCII fallback name and the exact UTF-8 one
    (RFC 6266)."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\;%' else "_" for ch in filename)
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


@router.get("/dev-inbox")
async def inbox(
    request: Request, runtime: RuntimeDep, q: str = "", page: str = "1", done: str = ""
) -> Response:
    opened = await _open(request, runtime)
    if isinstance(opened, Response):
        return opened
    session, box = opened
    number = _page_number(page)
    search_error, status = None, 200
    try:
        async with runtime.uow(read_only=True) as uow:
            try:
                found = await dev_inbox.list_mail(
                    uow,
                    box,
                    session.principal,
                    search=q,
                    limit=PAGE_SIZE,
                    offset=(number - 1) * PAGE_SIZE,
                )
            except InvalidInput as exc:
                search_error, status, q = exc.message, 422, ""
                found = await dev_inbox.list_mail(uow, box, session.principal, limit=PAGE_SIZE)
    except VisitmailError as exc:
        return _error(request, session, exc)
    return render(
        request,
        "dev_inbox.html",
        session,
        status=status,
        mails=found.mails,
        total=found.total,
        page=number,
        has_next=number * PAGE_SIZE < found.total,
        q=q,
        search_max=dev_inbox.SEARCH_MAX,
        search_error=search_error,
        notice=NOTICES.get(done),
        port=request.app.state.dev_inbox_port,
    )


@router.post("/dev-inbox/delete-all")
async def delete_all(
    request: Request, runtime: RuntimeDep, csrf_token: Annotated[str, Form(max_length=200)] = ""
) -> Response:
    loaded = await _load(request, runtime, dev_inbox.delete_all, csrf_token=csrf_token)
    if isinstance(loaded, Response):
        return loaded
    return RedirectResponse("/dev-inbox?" + urlencode({"done": "cleared"}), status_code=303)


@router.get("/dev-inbox/{name}")
async def one(request: Request, runtime: RuntimeDep, name: str, view: str = "") -> Response:
    loaded = await _load(request, runtime, _mail_named(dev_inbox.open_mail, name))
    if isinstance(loaded, Response):
        return loaded
    session, box, message = loaded
    try:
        summary = box.summary(name)
    except KeyError:  # deleted (in another tab) since it was opened
        return render(request, "error.html", session, status=404, message=_MESSAGES[404])
    mail = content_of.content(message)
    if view not in VIEWS:
        view = "html" if mail.html is not None else "text"
    return render(
        request,
        "dev_inbox_mail.html",
        session,
        mail_name=name,
        summary=summary,
        mail=mail,
        view=view,
    )


@router.get("/dev-inbox/{name}/html")
async def html_body(request: Request, runtime: RuntimeDep, name: str) -> Response:
    loaded = await _load(request, runtime, _mail_named(dev_inbox.open_mail, name))
    if isinstance(loaded, Response):
        return loaded
    html = content_of.content(loaded[2]).html
    return Response(
        content=(html or "").encode("utf-8"),
        media_type="text/html; charset=utf-8",
        headers={
            **_PRIVATE,
            "Content-Security-Policy": HTML_BODY_POLICY,
            "X-Frame-Options": "SAMEORIGIN",
        },
    )


@router.get("/dev-inbox/{name}/raw")
async def raw(request: Request, runtime: RuntimeDep, name: str) -> Response:
    loaded = await _load(request, runtime, _mail_named(dev_inbox.raw_mail, name))
    if isinstance(loaded, Response):
        return loaded
    return Response(
        content=loaded[2],
        media_type="message/rfc822",
        headers={**_PRIVATE, "Content-Disposition": content_disposition("attachment", name)},
    )


@router.get("/dev-inbox/{name}/attachments/{index}")
async def attachment(
    request: Request, runtime: RuntimeDep, name: str, index: str, download: str = ""
) -> Response:
    number = int(index) if index.isdecimal() and len(index) < 6 else -1

    async def load(
        uow: OutboxUnitOfWork, box: Mailbox, principal: Principal
    ) -> tuple[content_of.Attachment, bytes]:
        return await dev_inbox.open_attachment(uow, box, principal, name, number)

    loaded = await _load(request, runtime, load)
    if isinstance(loaded, Response):
        return loaded
    found, data = loaded[2]
    inline = found.opens_inline and not download
    headers = {
        **_PRIVATE,
        "Content-Disposition": content_disposition(
            "inline" if inline else "attachment", found.filename
        ),
    }
    if found.content_type != "application/pdf":
        # Chromium's PDF viewer does not run in a sandboxed document; nothing else needs more.
        headers["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; sandbox"
    return Response(content=data, media_type=found.content_type, headers=headers)


@router.post("/dev-inbox/{name}/delete")
async def delete_one(
    request: Request,
    runtime: RuntimeDep,
    name: str,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    loaded = await _load(
        request, runtime, _mail_named(dev_inbox.delete_mail, name), csrf_token=csrf_token
    )
    if isinstance(loaded, Response):
        return loaded
    return RedirectResponse("/dev-inbox?" + urlencode({"done": "deleted"}), status_code=303)
