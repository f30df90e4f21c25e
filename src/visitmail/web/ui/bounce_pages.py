"""The Bounces page (admin): where bounces and complaints are read from, whether reading
works, and what came back.

- ``GET /settings/bounces``: the bounce-mailbox form (prefilled with the IMAP host that goes
  with the mail server), how the last poll went, the last 30 days' rates (complaints
  against the 0.1 % Gmail asks of bulk senders), the newest bounces and complaints.
- ``POST /settings/bounces``: save (Post/Redirect/Get with a notice); errors beside the
  field that caused them, the form as typed.
- ``POST /settings/bounces/test``: sign in and look, changing nothing; the page shows the
  result (like a dry run, it is not an action, so it is not redirected).
- ``POST /settings/bounces/delete``: stop reading (confirmed in a ``<details>`` first).

Thin: the services decide (:mod:`visitmail.services.bounce_mailbox`,
:mod:`visitmail.services.delivery_events`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from visitmail.adapters.crypto.secret_box import SecretBox
from visitmail.adapters.imap.mailbox import poll_mailbox
from visitmail.domain.bounce_mailbox import BounceMailbox, suggested_host
from visitmail.domain.errors import InvalidInput, NotFound, PermissionDenied, VisitmailError
from visitmail.domain.roles import Role
from visitmail.domain.smtp_settings import Security
from visitmail.oauth_wiring import build_token_service, token_policy
from visitmail.services import bounce_mailbox, delivery_events
from visitmail.services.clock import utcnow
from visitmail.web.deps import RuntimeDep
from visitmail.web.ui.outbox_pages import csrf_failed, error_page
from visitmail.web.ui.pages import render, to_login
from visitmail.web.ui.session import UiSession, current_session, tokens_match

router = APIRouter(include_in_schema=False)

FORBIDDEN = "Only admins set up where bounces are read."
NOTICES = {
    "saved": "Saved. The worker reads the mailbox every two minutes.",
    "deleted": "Bounces are no longer read from a mailbox.",
}
SECURITY_CHOICES = (
    (Security.TLS.value, "TLS (IMAPS, usually port 993)"),
    (Security.STARTTLS.value, "STARTTLS (usually port 143)"),
)
EVENT_WORDS = {
    ("bounced", "hard"): "Bounced: the address does not exist",
    ("bounced", "soft"): "Bounced: temporarily (mailbox full, blocked, too big)",
    ("complained", None): "Marked as spam",
    ("deferred", None): "Delayed: the receiving side is still trying",
    ("unsubscribed", None): "Unsubscribed at the relay",
}

Form_ = Annotated[str, Form(max_length=1000)]


def _form_of(
    view: bounce_mailbox.BounceMailboxView | None, smtp_host: str | None
) -> dict[str, Any]:
    if view is None:
        return {
            "host": suggested_host(smtp_host) if smtp_host else "",
            "port": "993",
            "security": Security.TLS.value,
            "sign_in": "server",
            "username": "",
            "folder": "INBOX",
            "enabled": True,
        }
    s = view.settings
    return {
        "host": s.host,
        "port": str(s.port),
        "security": s.security.value,
        "sign_in": "own" if s.username else "server",
        "username": s.username or "",
        "folder": s.folder,
        "enabled": s.enabled,
    }


async def _render(
    request: Request,
    runtime: RuntimeDep,
    session: UiSession,
    *,
    form: dict[str, Any] | None = None,
    error: VisitmailError | None = None,
    notice: str | None = None,
    tested: bounce_mailbox.MailboxTest | None = None,
    status: int = 200,
) -> HTMLResponse:
    async with runtime.uow(read_only=True) as uow:
        try:
            view: bounce_mailbox.BounceMailboxView | None = await bounce_mailbox.get_mailbox(
                uow, session.principal
            )
        except NotFound:
            view = None
        smtp = await uow.smtp_settings.get(session.principal.organization_id)
        rates = await delivery_events.rates(uow, session.principal, now=utcnow())
        recent = await delivery_events.recent_events(uow, session.principal, limit=20)
    smtp_settings = smtp.settings if smtp else None
    return render(
        request,
        "bounces.html",
        session,
        status=status,
        view=view,
        form=form or _form_of(view, smtp_settings.host if smtp_settings else None),
        smtp=smtp_settings,
        smtp_login=(smtp_settings.username if smtp_settings else None),
        smtp_oauth=bool(smtp_settings and smtp_settings.uses_oauth),
        security_choices=SECURITY_CHOICES,
        error=error.message if error else None,
        error_field=error.field if error else None,
        notice=notice,
        tested=tested,
        rates=rates,
        recent=recent,
        event_words=EVENT_WORDS,
    )


async def _admin(request: Request, runtime: RuntimeDep) -> UiSession | Response:
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    if not session.principal.role.at_least(Role.ADMIN):
        return error_page(request, session, 403, FORBIDDEN)
    return session


@router.get("/settings/bounces")
async def bounces_page(request: Request, runtime: RuntimeDep, done: str = "") -> Response:
    session = await _admin(request, runtime)
    if isinstance(session, Response):
        return session
    return await _render(request, runtime, session, notice=NOTICES.get(done))


@router.post("/settings/bounces")
async def bounces_save(
    request: Request,
    runtime: RuntimeDep,
    csrf_token: Form_ = "",
    host: Form_ = "",
    port: Form_ = "",
    security: Form_ = "",
    sign_in: Form_ = "server",
    username: Form_ = "",
    password: Form_ = "",
    folder: Form_ = "INBOX",
    enabled: Form_ = "",
) -> Response:
    session = await _admin(request, runtime)
    if isinstance(session, Response):
        return session
    if not tokens_match(session.csrf_token, csrf_token):
        return csrf_failed(request, session)
    form = {
        "host": host,
        "port": port,
        "security": security,
        "sign_in": sign_in,
        "username": username,
        "folder": folder,
        "enabled": bool(enabled),
    }
    try:
        if not port.strip().isdecimal() or len(port.strip()) > 5:
            raise InvalidInput("must be a port between 1 and 65535", field="port")
        if security not in {s.value for s in Security} or security == Security.NONE.value:
            raise InvalidInput("choose TLS or STARTTLS", field="security")
        own = sign_in == "own"
        mailbox = BounceMailbox(
            host=host,
            port=int(port),
            security=Security(security),
            username=username if own else None,
            folder=folder,
            enabled=bool(enabled),
        )
        async with runtime.uow() as uow:
            await bounce_mailbox.put_mailbox(
                uow,
                SecretBox(runtime.keyring),
                session.principal,
                mailbox,
                password=password if own and password else bounce_mailbox.KEEP,
                now=utcnow(),
            )
    except PermissionDenied:
        return error_page(request, session, 403, FORBIDDEN)
    except VisitmailError as exc:
        return await _render(request, runtime, session, form=form, error=exc, status=422)
    return RedirectResponse("/settings/bounces?done=saved", status_code=303)


@router.post("/settings/bounces/test")
async def bounces_test(request: Request, runtime: RuntimeDep, csrf_token: Form_ = "") -> Response:
    session = await _admin(request, runtime)
    if isinstance(session, Response):
        return session
    if not tokens_match(session.csrf_token, csrf_token):
        return csrf_failed(request, session)
    try:
        async with runtime.uow(read_only=True) as uow:
            tested = await bounce_mailbox.test_mailbox(
                uow,
                SecretBox(runtime.keyring),
                session.principal,
                reader=poll_mailbox,
                policy=token_policy(runtime),
                tokens=build_token_service(runtime),
                now=utcnow(),
            )
    except VisitmailError as exc:
        return await _render(request, runtime, session, error=exc, status=404)
    return await _render(request, runtime, session, tested=tested)


@router.post("/settings/bounces/delete")
async def bounces_delete(request: Request, runtime: RuntimeDep, csrf_token: Form_ = "") -> Response:
    session = await _admin(request, runtime)
    if isinstance(session, Response):
        return session
    if not tokens_match(session.csrf_token, csrf_token):
        return csrf_failed(request, session)
    try:
        async with runtime.uow() as uow:
            await bounce_mailbox.delete_mailbox(uow, session.principal, now=utcnow())
    except VisitmailError as exc:
        return await _render(request, runtime, session, error=exc, status=404)
    return RedirectResponse("/settings/bounces?done=deleted", status_code=303)
