"""The UI's session cookie and CSRF tokens.

Before login, CSRF is a double-submit token: a random cookie that the form must echo.
After login, the form must echo the token stored with the server-side session.

A session opened with a one-time password (an admin reset it) may only change the
password: :func:`current_session` raises :class:`PasswordChangeRequired` for it on every
other page, and :func:`password_change_required` (an exception handler the app installs)
answers with a redirect to the change form, remembering the page that was asked for.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from visitmail.domain.identity import Principal
from visitmail.runtime import Runtime
from visitmail.services import login
from visitmail.web.ui.return_to import request_target, safe_next

SESSION_COOKIE = "vm_session"
CSRF_COOKIE = "vm_csrf"
PASSWORD_PAGE = "/account/password"  # noqa: S105 (a page address)


class PasswordChangeRequired(Exception):
    """The session's user must choose a new password before anything else."""


@dataclass(frozen=True, slots=True)
class UiSession:
    principal: Principal
    csrf_token: str


def tokens_match(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))


def pre_login_csrf(request: Request) -> str:
    """The anonymous CSRF token: the cookie's value, or a new one (set it with ``set_csrf``)."""
    return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)


def set_csrf_cookie(response: Response, token: str, runtime: Runtime) -> None:
    response.set_cookie(
        CSRF_COOKIE, token, httponly=True, samesite="strict", secure=runtime.settings.secure_cookies
    )


def set_session_cookie(response: Response, secret: str, runtime: Runtime) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        httponly=True,
        samesite="lax",
        secure=runtime.settings.secure_cookies,
        max_age=runtime.settings.session_hours * 3600,
    )


async def current_session(
    request: Request, runtime: Runtime, *, password_change: bool = False
) -> UiSession | None:
    """The request's live session, or ``None``. Raises :class:`PasswordChangeRequired`
    when its user must change their password, unless ``password_change`` (the change form
    and logging out pass it)."""
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        return None
    async with runtime.uow(read_only=True) as uow:
        found = await login.resolve_session(uow, secret)
    if found is None:
        return None
    if found[0].user.must_change_password and not password_change:
        raise PasswordChangeRequired
    return UiSession(principal=found[0], csrf_token=found[1])


async def password_change_required(request: Request, _exc: Exception) -> Response:
    """Exception handler: to the change form; a GET's page is kept as ``next``."""
    target = safe_next(request_target(request.scope)) if request.method == "GET" else None
    if target is None or target == "/":
        return RedirectResponse(PASSWORD_PAGE, status_code=303)
    return RedirectResponse(f"{PASSWORD_PAGE}?next={quote(target, safe='/')}", status_code=303)
