"""Pages: login/logout, dashboard, organization users. Thin: parse the form, call one
service, render the result or the error next to its field.

The login returns to the page that was asked for (``next``, checked by
:func:`~visitmail.web.ui.return_to.safe_next`); a session opened with a one-time password
goes to the change-password form first."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote
from uuid import UUID

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from visitmail.adapters.db.setup_queries import SqlSetupState
from visitmail.domain.errors import RateLimited, VisitmailError
from visitmail.domain.identity import has_own_name
from visitmail.domain.roles import Role, describe
from visitmail.services import delivery_events, identity, login, setup_checklist
from visitmail.services.clock import utcnow
from visitmail.web.deps import RuntimeDep
from visitmail.web.ui.reset_notice import (
    CREATED_COOKIE,
    RESET_COOKIE,
    forget_created_notice,
    forget_reset_notice,
    open_created_notice,
    open_reset_notice,
    seal_created,
    set_notice_cookie,
)
from visitmail.web.ui.return_to import safe_next
from visitmail.web.ui.session import (
    PASSWORD_PAGE,
    SESSION_COOKIE,
    UiSession,
    current_session,
    pre_login_csrf,
    set_csrf_cookie,
    set_session_cookie,
    tokens_match,
)

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
router = APIRouter(include_in_schema=False)

FormStr = Annotated[str, Form()]


def render(
    request: Request, name: str, session: UiSession | None, status: int = 200, **context: Any
) -> HTMLResponse:
    context.update(
        session=session,
        user=session.principal.user if session else None,
        csrf_token=session.csrf_token if session else context.get("csrf_token"),
        is_admin=bool(session and session.principal.role.at_least(Role.ADMIN)),
        dev_inbox=getattr(request.app.state, "dev_inbox", None) is not None,
    )
    return templates.TemplateResponse(request, name, context, status_code=status)


def to_login() -> RedirectResponse:
    return RedirectResponse("/login", status_code=303)


def csrf_failed(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        "error.html",
        {
            "session": None,
            "user": None,
            "message": "The form expired or was not sent from this "
            "site (CSRF check failed). Reload the page and try again.",
        },
        status_code=403,
    )


@router.get("/login")
async def login_form(request: Request, runtime: RuntimeDep) -> Response:
    token = pre_login_csrf(request)
    next_path = safe_next(request.query_params.get("next"))
    response = render(
        request,
        "login.html",
        None,
        csrf_token=token,
        email="",
        error=None,
        next_path=next_path,
        asked_for=next_path is not None,
    )
    set_csrf_cookie(response, token, runtime)
    return response


@router.post("/login")
async def login_submit(
    request: Request,
    runtime: RuntimeDep,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    cookie = request.cookies.get("vm_csrf")
    next_path = safe_next(next)
    if not tokens_match(cookie, csrf_token):
        return csrf_failed(request)
    client = request.client.host if request.client else "unknown"
    try:
        async with runtime.uow() as uow:
            opened = await login.log_in(
                uow,
                runtime.hasher,
                email=email,
                password=password,
                client=client,
                policy=runtime.login_policy,
                dummy_hash=runtime.dummy_hash,
            )
    except VisitmailError as exc:
        page = render(
            request,
            "login.html",
            None,
            status=429 if isinstance(exc, RateLimited) else 401,
            csrf_token=csrf_token,
            email=email,
            error=exc.message,
            next_path=next_path,
            asked_for=False,
        )
        if isinstance(exc, RateLimited):  # every 429 says when to come back (RFC 6585)
            page.headers["Retry-After"] = str(exc.retry_after)
        return page
    target = next_path or "/"
    if opened.principal.user.must_change_password:  # a one-time password: choose one first
        target = PASSWORD_PAGE + (f"?next={quote(next_path, safe='/')}" if next_path else "")
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, opened.secret, runtime)
    return response


@router.post("/logout")
async def logout(
    request: Request, runtime: RuntimeDep, csrf_token: Annotated[str, Form()] = ""
) -> Response:
    session = await current_session(request, runtime, password_change=True)
    if session is None:
        return to_login()
    if not tokens_match(session.csrf_token, csrf_token):
        return csrf_failed(request)
    async with runtime.uow() as uow:
        await login.log_out(uow, request.cookies[SESSION_COOKIE])
    response = to_login()
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/")
async def dashboard(request: Request, runtime: RuntimeDep) -> Response:
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    async with runtime.uow(read_only=True) as uow:
        org = await uow.organizations.get(session.principal.organization_id)
        board = await setup_checklist.dashboard(
            SqlSetupState(uow.session), session.principal, utcnow()
        )
        came_back = None
        if session.principal.role.at_least(delivery_events.READ_ROLE):
            came_back = await delivery_events.rates(uow, session.principal, now=utcnow())
    return render(
        request,
        "dashboard.html",
        session,
        organization=org,
        checklist=board.checklist,
        health=board.health,
        came_back=came_back,
    )


def not_admin(request: Request, session: UiSession) -> HTMLResponse:
    return render(
        request,
        "error.html",
        session,
        status=403,
        message="Only admins manage the organization's users.",
    )


async def users_page_with(
    request: Request,
    runtime: RuntimeDep,
    session: UiSession,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """The users page. ``error``/``error_field``: a problem of the add form, shown in it;
    ``member_error`` (``user_id``, ``message``, ``field``, optional ``value``): a problem
    of one member's row, shown in that row."""
    async with runtime.uow(read_only=True) as uow:
        users = await identity.list_users(uow, session.principal)
    context.setdefault(
        "unnamed", {u.id for u in users if not has_own_name(u.display_name, u.email)}
    )
    context.setdefault("member_error", None)
    context.setdefault("error", None)
    context.setdefault("error_field", None)
    context.setdefault("created", None)
    context.setdefault("form", {"email": "", "role": "user", "display_name": ""})
    context.setdefault("reset", None)
    context.setdefault("updated", None)  # the id (text) of the member whose change was saved
    page = render(
        request,
        "users.html",
        session,
        status=status,
        users=users,
        roles=list(Role),
        role_descriptions={r: describe(r) for r in Role},
        **context,
    )
    page.headers["Cache-Control"] = "no-store"  # an initial or one-time password may be on it
    return page


@router.get("/users")
async def users_page(request: Request, runtime: RuntimeDep) -> Response:
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    if not session.principal.role.at_least(Role.ADMIN):
        return not_admin(request, session)
    done = request.query_params.get("done")
    reset = open_reset_notice(request, runtime, session) if done == "reset" else None
    created = open_created_notice(request, runtime, session) if done == "created" else None
    updated = request.query_params.get("user") if done == "updated" else None
    page = await users_page_with(
        request, runtime, session, reset=reset, created=created, updated=updated
    )
    if RESET_COOKIE in request.cookies:
        forget_reset_notice(page, runtime)  # shown once: a reload does not show it again
    if CREATED_COOKIE in request.cookies:
        forget_created_notice(page, runtime)
    return page


@router.post("/users")
async def users_create(
    request: Request,
    runtime: RuntimeDep,
    email: Annotated[str, Form(max_length=320)] = "",
    role: Annotated[str, Form(max_length=32)] = "user",
    display_name: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    if not tokens_match(session.csrf_token, csrf_token):
        return csrf_failed(request)
    if not session.principal.role.at_least(Role.ADMIN):
        return not_admin(request, session)
    form = {"email": email, "role": role, "display_name": display_name}
    try:
        chosen = Role(role)
    except ValueError:
        return await users_page_with(
            request,
            runtime,
            session,
            status=422,
            error="Choose one of the listed roles.",
            error_field="role",
            form=form,
        )
    try:
        async with runtime.uow() as uow:
            created = await identity.create_user(
                uow,
                runtime.hasher,
                session.principal,
                email=email,
                role=chosen,
                display_name=display_name,
            )
    except VisitmailError as exc:
        if exc.code == "forbidden":
            return not_admin(request, session)
        status = 409 if exc.code == "conflict" else 422
        return await users_page_with(
            request,
            runtime,
            session,
            status=status,
            error=exc.message,
            error_field=exc.field,
            form=form,
        )
    response = RedirectResponse("/users?done=created#created-notice", status_code=303)
    set_notice_cookie(response, runtime, CREATED_COOKIE, seal_created(runtime, session, created))
    return response


@router.post("/users/{user_id}")
async def users_update(
    request: Request,
    runtime: RuntimeDep,
    user_id: UUID,
    role: Annotated[str, Form(max_length=32)] = "",
    disabled: Annotated[str, Form(max_length=8)] = "",
    display_name: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Change a member's role, status and name; an empty name field keeps the name."""
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    if not tokens_match(session.csrf_token, csrf_token):
        return csrf_failed(request)
    if not session.principal.role.at_least(Role.ADMIN):
        return not_admin(request, session)
    try:
        chosen = Role(role) if role else None
        async with runtime.uow() as uow:
            await identity.update_user(
                uow,
                session.principal,
                user_id,
                role=chosen,
                disabled={"yes": True, "no": False}.get(disabled),
                display_name=display_name or None,
            )
    except ValueError:
        role_problem: dict[str, object] = {
            "user_id": user_id,
            "message": "Choose one of the listed roles.",
            "field": "role",
        }
        return await users_page_with(
            request, runtime, session, status=422, member_error=role_problem
        )
    except VisitmailError as exc:
        status = 409 if exc.code == "conflict" else 422
        if exc.code == "forbidden":
            return not_admin(request, session)
        if exc.code == "not_found":
            return render(request, "error.html", session, status=404, message="No such user.")
        # Shown in the member's row, beside the field at fault, with what was typed.
        problem: dict[str, object] = {
            "user_id": user_id,
            "message": exc.message,
            "field": exc.field or "row",
        }
        if exc.field == "display_name":
            problem["value"] = display_name
        return await users_page_with(request, runtime, session, status=status, member_error=problem)
    return RedirectResponse(f"/users?done=updated&user={user_id}#updated-notice", status_code=303)
