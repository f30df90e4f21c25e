"""The UI's session cookie and CSRF tokens.

Before login, CSRF is a double-submit token: a random cookie that the form must echo.
After login, the form must echo the token stored with the server-side session.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import Response

from visitmail.domain.identity import Principal
from visitmail.runtime import Runtime
from visitmail.services import login

SESSION_COOKIE = "vm_session"
CSRF_COOKIE = "vm_csrf"


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


async def current_session(request: Request, runtime: Runtime) -> UiSession | None:
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        return None
    async with runtime.uow(read_only=True) as uow:
        found = await login.resolve_session(uow, secret)
    if found is None:
        return None
    return UiSession(principal=found[0], csrf_token=found[1])
