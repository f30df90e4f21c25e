"""Account pages: change your own password (every role), and an admin's password reset
of a member (on the users page). Thin: parse the form, call one service
(:mod:`visitmail.services.passwords`), show each error beside its field, and
Post/Redirect/Get on success.

The one-time password of a reset is shown once, after the redirect
(:mod:`visitmail.web.ui.reset_notice`).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote
from uuid import UUID

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from visitmail.domain.errors import RateLimited, VisitmailError
from visitmail.services import passwords
from visitmail.services.identity import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from visitmail.web.deps import RuntimeDep
from visitmail.web.ui.pages import csrf_failed, not_admin, render, to_login, users_page_with
from visitmail.web.ui.reset_notice import (
    RESET_COOKIE,
    RESET_COOKIE_PATH,
    RESET_NOTICE_SECONDS,
    seal_notice,
)
from visitmail.web.ui.return_to import safe_next
from visitmail.web.ui.session import (
    PASSWORD_PAGE,
    UiSession,
    current_session,
    set_session_cookie,
    tokens_match,
)

router = APIRouter(include_in_schema=False)

_FIELDS = ("current_password", "new_password", "new_password_confirm")
# Form fields are bounded a little above the rule, so an overlong value reaches the
# service and is answered beside its field instead of as a bare 422.
PasswordField = Annotated[str, Form(max_length=MAX_PASSWORD_LENGTH + 1)]


def _page(
    request: Request,
    session: UiSession,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    form_error: str | None = None,
    notice: str | None = None,
    next_path: str | None = None,
) -> Response:
    page = render(
        request,
        "account_password.html",
        session,
        status=status,
        errors=errors or {},
        form_error=form_error,
        notice=notice,
        next_path=next_path,
        forced=session.principal.user.must_change_password,
        min_length=MIN_PASSWORD_LENGTH,
        max_length=MAX_PASSWORD_LENGTH,
    )
    page.headers["Cache-Control"] = "no-store"
    return page


@router.get(PASSWORD_PAGE)
async def password_form(request: Request, runtime: RuntimeDep) -> Response:
    session = await current_session(request, runtime, password_change=True)
    if session is None:
        return to_login()
    notice = None
    if request.query_params.get("done") == "changed":
        notice = "Your password was changed. Your other sessions were logged out."
    next_path = safe_next(request.query_params.get("next"))
    return _page(request, session, notice=notice, next_path=next_path)


@router.post(PASSWORD_PAGE)
async def password_change(
    request: Request,
    runtime: RuntimeDep,
    current_password: PasswordField = "",
    new_password: PasswordField = "",
    new_password_confirm: PasswordField = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    session = await current_session(request, runtime, password_change=True)
    if session is None:
        return to_login()
    if not tokens_match(session.csrf_token, csrf_token):
        return csrf_failed(request)
    next_path = safe_next(next)
    try:
        async with runtime.uow() as uow:
            opened = await passwords.change_own_password(
                uow,
                runtime.hasher,
                session.principal,
                current_password=current_password,
                new_password=new_password,
                new_password_confirm=new_password_confirm,
                policy=runtime.login_policy,
                reissue_session=True,
            )
    except RateLimited as exc:
        page = _page(request, session, status=429, form_error=exc.message, next_path=next_path)
        page.headers["Retry-After"] = str(exc.retry_after)
        return page
    except VisitmailError as exc:
        field = exc.field if exc.field in _FIELDS else None
        return _page(
            request,
            session,
            status=422,
            errors={field: exc.message} if field else None,
            form_error=None if field else exc.message,
            next_path=next_path,
        )
    assert opened is not None  # reissue_session=True
    target = f"{PASSWORD_PAGE}?done=changed"
    if next_path:
        target += f"&next={quote(next_path, safe='/')}"
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, opened.secret, runtime)  # the old session id is dead
    return response


@router.post("/users/{user_id}/password-reset")
async def users_password_reset(
    request: Request,
    runtime: RuntimeDep,
    user_id: UUID,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    if not tokens_match(session.csrf_token, csrf_token):
        return csrf_failed(request)
    try:
        async with runtime.uow() as uow:
            reset = await passwords.reset_password(uow, runtime.hasher, session.principal, user_id)
    except VisitmailError as exc:
        status = {"forbidden": 403, "not_found": 404, "conflict": 409}.get(exc.code, 422)
        if exc.code == "forbidden":
            return not_admin(request, session)
        if exc.code == "not_found":
            return render(request, "error.html", session, status=404, message="No such user.")
        problem = {"user_id": user_id, "message": exc.message, "field": "password_reset"}
        return await users_page_with(request, runtime, session, status=status, member_error=problem)
    response = RedirectResponse("/users?done=reset#reset-notice", status_code=303)
    response.set_cookie(
        RESET_COOKIE,
        seal_notice(runtime, session, reset),
        max_age=RESET_NOTICE_SECONDS,
        path=RESET_COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=runtime.settings.secure_cookies,
    )
    return response
