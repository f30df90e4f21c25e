"""The one-time password of an admin's reset, and the initial password of a user the admin
just added, each shown once after the redirect.

Post/Redirect/Get and "shown only once" meet here: the password travels to the admin's
browser in a short-lived cookie (path ``/users``, HttpOnly, SameSite=Strict, five
minutes) sealed with the master key and bound to the organization and the admin, which
the users page opens, shows once and deletes. It is never stored on the server in clear,
and a reload does not show it again. The two notices have their own cookie and sealing
field, so one is never read as the other.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from fastapi import Request
from fastapi.responses import Response

from visitmail.adapters.crypto.secret_box import SecretBox
from visitmail.domain.errors import VisitmailError
from visitmail.runtime import Runtime
from visitmail.services.identity import NewUser
from visitmail.services.passwords import PasswordReset
from visitmail.web.ui.session import UiSession

RESET_COOKIE = "vm_reset_notice"
CREATED_COOKIE = "vm_created_notice"
RESET_COOKIE_PATH = "/users"
RESET_NOTICE_SECONDS = 300  # the admin reads it right after the redirect
MAX_COOKIE_LENGTH = 4000


@dataclass(frozen=True, slots=True)
class ResetNotice:
    user_id: UUID
    email: str
    sessions_ended: int
    tokens_revoked: int
    password: str = field(repr=False)  # never in a repr or a log line


def _field(kind: str, session: UiSession) -> str:
    """The sealing field: the notice's kind and the admin it was made for."""
    return f"ui.{kind}.{session.principal.user.id}"


_RESET = "password_reset_notice"
_CREATED = "user_created_notice"


def _seal(runtime: Runtime, session: UiSession, kind: str, payload: dict[str, Any]) -> str:
    body = json.dumps({**payload, "at": int(time.time())})
    return SecretBox(runtime.keyring).seal(
        body, organization_id=session.principal.organization_id, field=_field(kind, session)
    )


def _open(
    request: Request, runtime: Runtime, session: UiSession, cookie: str, kind: str
) -> dict[str, Any] | None:
    """The cookie's payload if it is this admin's notice of ``kind``, unaltered and fresh;
    else ``None`` (another admin's, altered, stale: nothing to show)."""
    sealed = request.cookies.get(cookie)
    if not sealed or len(sealed) > MAX_COOKIE_LENGTH:
        return None
    try:
        plain = SecretBox(runtime.keyring).open(
            sealed,
            organization_id=session.principal.organization_id,
            field=_field(kind, session),
        )
        data: dict[str, Any] = json.loads(plain)
        if time.time() - int(data["at"]) > RESET_NOTICE_SECONDS:
            return None
        return data
    except (VisitmailError, ValueError, KeyError, TypeError):
        return None


def _forget(response: Response, runtime: Runtime, cookie: str) -> None:
    response.delete_cookie(
        cookie,
        path=RESET_COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=runtime.settings.secure_cookies,
    )


def seal_notice(runtime: Runtime, session: UiSession, reset: PasswordReset) -> str:
    return _seal(
        runtime,
        session,
        _RESET,
        {
            "u": str(reset.user.id),
            "e": reset.user.email,
            "p": reset.one_time_password,
            "s": reset.sessions_ended,
            "t": reset.tokens_revoked,
        },
    )


def open_reset_notice(request: Request, runtime: Runtime, session: UiSession) -> ResetNotice | None:
    """The reset notice the redirect carried, if any, readable and fresh; the caller shows
    it and deletes the cookie (:func:`forget_reset_notice`)."""
    data = _open(request, runtime, session, RESET_COOKIE, _RESET)
    try:
        return (
            None
            if data is None
            else ResetNotice(
                UUID(str(data["u"])),
                str(data["e"]),
                int(data["s"]),
                int(data["t"]),
                password=str(data["p"]),
            )
        )
    except (ValueError, KeyError, TypeError):
        return None


def forget_reset_notice(response: Response, runtime: Runtime) -> None:
    _forget(response, runtime, RESET_COOKIE)


@dataclass(frozen=True, slots=True)
class CreatedNotice:
    user_id: UUID
    email: str
    role: str
    password: str | None = field(default=None, repr=False)  # None: the admin chose none


def seal_created(runtime: Runtime, session: UiSession, created: NewUser) -> str:
    return _seal(
        runtime,
        session,
        _CREATED,
        {
            "u": str(created.user.id),
            "e": created.user.email,
            "r": created.user.role.value,
            "p": created.initial_password,
        },
    )


def open_created_notice(
    request: Request, runtime: Runtime, session: UiSession
) -> CreatedNotice | None:
    """The "user added" notice the redirect carried, if readable and fresh; the caller
    shows it and deletes the cookie (:func:`forget_created_notice`)."""
    data = _open(request, runtime, session, CREATED_COOKIE, _CREATED)
    try:
        if data is None:
            return None
        password = data.get("p")
        return CreatedNotice(
            UUID(str(data["u"])),
            str(data["e"]),
            str(data["r"]),
            password=str(password) if password else None,
        )
    except (ValueError, KeyError, TypeError):
        return None


def set_notice_cookie(response: Response, runtime: Runtime, name: str, sealed: str) -> None:
    response.set_cookie(
        name,
        sealed,
        max_age=RESET_NOTICE_SECONDS,
        path=RESET_COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=runtime.settings.secure_cookies,
    )


def forget_created_notice(response: Response, runtime: Runtime) -> None:
    _forget(response, runtime, CREATED_COOKIE)
