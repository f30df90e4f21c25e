"""The browser sign-in of a delegated mailbox ("Connect Microsoft 365" / "Connect Google").

* ``POST /settings/smtp/oauth/connect`` (a form on the mail server page, CSRF-checked,
  admin only): starts a sign-in for the *saved* settings and redirects (303) to the
  provider's authorization URL.
* ``GET /settings/smtp/oauth/callback?code=&state=`` (the provider sends the browser here;
  the login session cookie comes along, ``SameSite=Lax``): checks the state against the
  session, exchanges the code and stores the tokens, then redirects (Post/Redirect/Get) to
  ``/settings/smtp?connected=1``. Any failure, the provider's ``error=access_denied``
  included, shows a page with what happened and the fix; nothing is stored then.

The state doubles as the CSRF protection of the callback: it is bound to the admin's login
session and used once (``services/oauth_connect``). Thin shell: one service call each.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from visitmail.domain.errors import VisitmailError
from visitmail.domain.oauth_connect import CALLBACK_PATH, ConnectFailed
from visitmail.domain.roles import Role
from visitmail.oauth_wiring import connect_config
from visitmail.services import oauth_connect
from visitmail.web.connect_wiring import clock_of, consent_client_of
from visitmail.web.deps import RuntimeDep
from visitmail.web.errors import status_for
from visitmail.web.smtp_wiring import SecretBoxDep
from visitmail.web.ui.pages import render, to_login
from visitmail.web.ui.session import SESSION_COOKIE, UiSession, current_session, tokens_match
from visitmail.web.ui.smtp_pages import PAGE, form_values

router = APIRouter(include_in_schema=False)
CONNECT = f"{PAGE}/oauth/connect"
MAX_QUERY = 4096


def _failed(
    request: Request, session: UiSession | None, exc: VisitmailError, status: int = 400
) -> HTMLResponse:
    return render(
        request,
        "oauth_error.html",
        session,
        status=status,
        message=exc.message,
        fix=getattr(exc, "fix", None),
    )


async def _admin(request: Request, runtime: RuntimeDep) -> UiSession | Response:
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    if not session.principal.role.at_least(Role.ADMIN):
        return render(
            request,
            "error.html",
            session,
            status=403,
            message="Only admins connect the organization's mailbox.",
        )
    return session


@router.post(CONNECT)
async def connect(request: Request, runtime: RuntimeDep, box: SecretBoxDep) -> Response:
    guarded = await _admin(request, runtime)
    if not isinstance(guarded, UiSession):
        return guarded
    session = guarded
    form = form_values(await request.form())
    if not tokens_match(session.csrf_token, form.get("csrf_token")):
        return render(
            request,
            "error.html",
            session,
            status=403,
            message="The form expired or was not sent from this site (CSRF check failed). "
            "Reload the page and try again.",
        )
    config = connect_config(runtime, str(request.base_url))
    try:
        async with runtime.uow() as uow:
            started = await oauth_connect.start_connect(
                uow,
                box,
                consent_client_of(request, runtime),
                session.principal,
                config,
                session_secret=request.cookies.get(SESSION_COOKIE),
                clock=clock_of(request),
                expected_provider=form.get("provider") or None,
            )
    except VisitmailError as exc:
        return _failed(request, session, exc, status_for(exc))
    return RedirectResponse(started.authorization_url, status_code=303)


@router.get(CALLBACK_PATH)
async def callback(request: Request, runtime: RuntimeDep, box: SecretBoxDep) -> Response:
    session = await current_session(request, runtime)
    if session is None:
        return _failed(
            request,
            None,
            ConnectFailed(
                "Your visitmail login session ended while you were signing in.",
                fix="Log in to visitmail, open the mail server page and click Connect again.",
            ),
            status=401,
        )
    if not session.principal.role.at_least(Role.ADMIN):
        return render(
            request,
            "error.html",
            session,
            status=403,
            message="Only admins connect the organization's mailbox.",
        )
    q = request.query_params
    try:
        await oauth_connect.complete_connect(
            runtime.uow,
            box,
            consent_client_of(request, runtime),
            session.principal,
            connect_config(runtime, str(request.base_url)),
            state=q.get("state", "")[:MAX_QUERY],
            code=q.get("code", "")[:MAX_QUERY] or None,
            error=q.get("error", "")[:MAX_QUERY] or None,
            error_description=q.get("error_description", "")[:MAX_QUERY] or None,
            session_secret=request.cookies.get(SESSION_COOKIE),
            clock=clock_of(request),
        )
    except VisitmailError as exc:
        return _failed(request, session, exc, status_for(exc))
    return RedirectResponse(f"{PAGE}?connected=1", status_code=303)
