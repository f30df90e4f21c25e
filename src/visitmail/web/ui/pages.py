"""Pages: login/logout, dashboard, organization users. Thin: parse the form, call one
service, render the result or the error next to its field."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from visitmail.adapters.db.setup_queries import SqlSetupState
from visitmail.domain.errors import RateLimited, VisitmailError
from visitmail.domain.identity import has_own_name
from visitmail.domain.roles import Role
from visitmail.services import identity, login, setup_checklist
from visitmail.services.clock import utcnow
from visitmail.web.deps import RuntimeDep
from visitmail.web.ui.session import (
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


def _csrf_failed(request: Request) -> HTMLResponse:
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
    response = render(request, "login.html", None, csrf_token=token, email="", error=None)
    set_csrf_cookie(response, token, runtime)
    return response


@router.post("/login")
async def login_submit(
    request: Request,
    runtime: RuntimeDep,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    cookie = request.cookies.get("vm_csrf")
    if not tokens_match(cookie, csrf_token):
        return _csrf_failed(request)
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
        )
        if isinstance(exc, RateLimited):  # every 429 says when to come back (RFC 6585)
            page.headers["Retry-After"] = str(exc.retry_after)
        return page
    response = RedirectResponse("/", status_code=303)
    set_session_cookie(response, opened.secret, runtime)
    return response


@router.post("/logout")
async def logout(
    request: Request, runtime: RuntimeDep, csrf_token: Annotated[str, Form()] = ""
) -> Response:
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    if not tokens_match(session.csrf_token, csrf_token):
        return _csrf_failed(request)
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
    return render(
        request,
        "dashboard.html",
        session,
        organization=org,
        checklist=board.checklist,
        health=board.health,
    )


async def _users_page(
    request: Request,
    runtime: RuntimeDep,
    session: UiSession,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    async with runtime.uow() as uow:
        users = await identity.list_users(uow, session.principal)
    context.setdefault(
        "unnamed", {u.id for u in users if not has_own_name(u.display_name, u.email)}
    )
    context.setdefault("member_error", None)
    context.setdefault("error", None)
    context.setdefault("error_field", None)
    context.setdefault("created", None)
    context.setdefault("form", {"email": "", "role": "user", "display_name": ""})
    return render(
        request, "users.html", session, status=status, users=users, roles=list(Role), **context
    )


@router.get("/users")
async def users_page(request: Request, runtime: RuntimeDep) -> Response:
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    if not session.principal.role.at_least(Role.ADMIN):
        return render(
            request,
            "error.html",
            session,
            status=403,
            message="Only admins manage the organization's users.",
        )
    return await _users_page(request, runtime, session)


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
        return _csrf_failed(request)
    form = {"email": email, "role": role, "display_name": display_name}
    try:
        chosen = Role(role)
    except ValueError:
        return await _users_page(
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
        status = 403 if exc.code == "forbidden" else 422
        return await _users_page(
            request,
            runtime,
            session,
            status=status,
            error=exc.message,
            error_field=exc.field,
            form=form,
        )
    return await _users_page(request, runtime, session, created=created)


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
        return _csrf_failed(request)
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
        return await _users_page(
            request,
            runtime,
            session,
            status=422,
            error="Choose one of the listed roles.",
            error_field="role",
        )
    except VisitmailError as exc:
        status = {"forbidden": 403, "not_found": 404}.get(exc.code, 422)
        if exc.field == "display_name":  # shown at the member's row, with what was typed
            problem = {"user_id": user_id, "message": exc.message, "value": display_name}
            return await _users_page(request, runtime, session, status=status, member_error=problem)
        return await _users_page(
            request, runtime, session, status=status, error=exc.message, error_field=exc.field
        )
    return RedirectResponse("/users", status_code=303)
