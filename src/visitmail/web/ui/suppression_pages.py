"""The Suppressions page: the addresses follow-ups are never sent to, why (in plain words,
with the server's reply for a refusal), a search box and pages; an add form and a lift
button (event_manager and up) behind a confirmation; the recent changes (the audit).

Thin: parse the query or the form, call one service of
:mod:`visitmail.services.suppressions`, render. Forms post and redirect (Post/Redirect/Get)
so a reload never repeats an add or a lift. The confirmation needs no script (the page's
Content-Security-Policy allows none inline): the lift button sits inside a ``<details>``
that first asks. Lower roles get the 403 page.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from visitmail.domain.errors import PermissionDenied, VisitmailError
from visitmail.domain.follow_up import SuppressionReason
from visitmail.services import suppressions
from visitmail.web.deps import RuntimeDep
from visitmail.web.errors import status_for
from visitmail.web.ui.outbox_pages import csrf_failed, error_page
from visitmail.web.ui.pages import render, templates, to_login
from visitmail.web.ui.session import UiSession, current_session, tokens_match

router = APIRouter(include_in_schema=False)

# base.html shows the "Suppressions" link to whoever may read the list (the service's rule).
templates.env.globals["suppressions_read_role"] = suppressions.READ_ROLE

PAGE_SIZE = 25
FORBIDDEN = "The suppression list is open to event curators, managers and admins."
REASONS = {
    SuppressionReason.UNSUBSCRIBED: "The lead unsubscribed with the link in a follow-up.",
    SuppressionReason.REJECTED: "The lead's mail server refused this address permanently.",
    SuppressionReason.MANUAL: "Added by hand.",
    SuppressionReason.BOUNCED: "Mail to this address bounced after it was accepted: the "
    "address does not exist, or it failed again and again.",
    SuppressionReason.COMPLAINED: "The lead marked a follow-up as spam.",
}
NOTICES = {"added": "is on the suppression list now.", "lifted": "can receive follow-ups again."}


def _page_number(page: str) -> int:
    return max(1, min(int(page), 100_000)) if page.isdecimal() and len(page) < 7 else 1


async def _render(
    request: Request,
    runtime: RuntimeDep,
    session: UiSession,
    *,
    q: str = "",
    number: int = 1,
    status: int = 200,
    form: dict[str, str] | None = None,
    error: VisitmailError | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    search_error = None
    try:
        async with runtime.uow(read_only=True) as uow:
            try:
                found = await suppressions.list_suppressions(
                    uow,
                    session.principal,
                    search=q,
                    limit=PAGE_SIZE,
                    offset=(number - 1) * PAGE_SIZE,
                )
            except PermissionDenied:
                raise
            except VisitmailError as exc:
                search_error = exc.message
                status = 422
                found = await suppressions.list_suppressions(
                    uow, session.principal, limit=PAGE_SIZE
                )
            changes = await suppressions.list_changes(uow, session.principal, limit=10)
    except PermissionDenied:
        return error_page(request, session, 403, FORBIDDEN)
    return render(
        request,
        "suppressions.html",
        session,
        status=status,
        entries=found.items,
        total=found.total,
        page=number,
        has_next=number * PAGE_SIZE < found.total,
        q=q if search_error is None else "",
        search_error=search_error,
        reasons=REASONS,
        can_manage=session.principal.role.at_least(suppressions.MANAGE_ROLE),
        changes=changes,
        form=form or {"address": "", "note": ""},
        error=error.message if error else None,
        error_field=error.field if error else None,
        notice=notice,
    )


@router.get("/suppressions")
async def suppression_list(
    request: Request,
    runtime: RuntimeDep,
    q: str = "",
    page: str = "1",
    done: str = "",
    address: str = "",
) -> Response:
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    notice = f"{address} {NOTICES[done]}" if done in NOTICES and _looks_valid(address) else None
    return await _render(request, runtime, session, q=q, number=_page_number(page), notice=notice)


def _looks_valid(address: str) -> bool:
    """Only an address is echoed in the notice after a redirect, not any text a crafted
    link carries."""
    try:
        suppressions.checked_address(address)
    except VisitmailError:
        return False
    return True


def _done(action: str, address: str) -> RedirectResponse:
    return RedirectResponse(
        "/suppressions?" + urlencode({"done": action, "address": address}), status_code=303
    )


@router.post("/suppressions")
async def suppression_add(
    request: Request,
    runtime: RuntimeDep,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    address: Annotated[str, Form(max_length=1000)] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    if not tokens_match(session.csrf_token, csrf_token):
        return csrf_failed(request, session)
    try:
        async with runtime.uow() as uow:
            added = await suppressions.add_suppression(
                uow, session.principal, address, note=note or None
            )
    except PermissionDenied:
        return error_page(request, session, 403, "Only event managers and admins add addresses.")
    except VisitmailError as exc:
        return await _render(
            request,
            runtime,
            session,
            status=status_for(exc),
            form={"address": address, "note": note},
            error=exc,
        )
    return _done("added", added.address)


@router.post("/suppressions/lift")
async def suppression_lift(
    request: Request,
    runtime: RuntimeDep,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    address: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    if not tokens_match(session.csrf_token, csrf_token):
        return csrf_failed(request, session)
    try:
        async with runtime.uow() as uow:
            await suppressions.lift_suppression(uow, session.principal, address)
    except PermissionDenied:
        return error_page(request, session, 403, "Only event managers and admins lift entries.")
    except VisitmailError as exc:
        return error_page(request, session, status_for(exc), exc.message)
    return _done("lifted", address.strip().lower())
