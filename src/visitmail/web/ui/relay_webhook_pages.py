"""The Relay webhooks page (admin): one endpoint per relay, created with a button, its URL
(and a generated basic-auth password) shown in the answer to that button only; the
provider's verification data set with a form per endpoint; a self-test for the relays whose
secret visitmail holds; delete behind a confirmation.

Thin: each form calls one service of :mod:`visitmail.services.relay_webhooks`. Changes that
reveal nothing redirect (Post/Redirect/Get); the create answer and a generated password are
rendered directly (they cannot go into a URL), so a reload never shows them again. Errors
are shown beside the field of the endpoint's form that caused them.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from visitmail.adapters.crypto.secret_box import SecretBox
from visitmail.domain.errors import NotFound, PermissionDenied, VisitmailError
from visitmail.domain.relay_events import RelayProvider
from visitmail.services import relay_webhooks as svc
from visitmail.web.api.relay_webhooks import base_url, sns_client
from visitmail.web.deps import RuntimeDep
from visitmail.web.errors import status_for
from visitmail.web.ui.outbox_pages import csrf_failed, error_page
from visitmail.web.ui.pages import render, to_login
from visitmail.web.ui.session import UiSession, current_session, tokens_match

router = APIRouter(include_in_schema=False)

PATH = "/settings/relay-webhooks"
FORBIDDEN = "Relay webhooks are set up by admins."
SELF_TESTABLE = (RelayProvider.MAILGUN, RelayProvider.POSTMARK, RelayProvider.BREVO)
NOTICES = {
    "saved": "Verification data saved.",
    "deleted": "Endpoint deleted: its URL answers 404 from now on.",
}


async def _render(
    request: Request,
    runtime: RuntimeDep,
    session: UiSession,
    *,
    status: int = 200,
    notice: str | None = None,
    shown: dict[str, str] | None = None,
    error: VisitmailError | None = None,
    error_provider: str | None = None,
    tested: tuple[str, svc.Received] | None = None,
) -> HTMLResponse:
    try:
        async with runtime.uow(read_only=True) as uow:
            endpoints = await svc.list_endpoints(uow, session.principal)
    except PermissionDenied:
        return error_page(request, session, 403, FORBIDDEN)
    have = {e.provider for e in endpoints}
    return render(
        request,
        "relay_webhooks.html",
        session,
        status=status,
        endpoints=endpoints,
        missing=[p for p in RelayProvider if p not in have],
        configured=svc.is_configured,
        self_testable=SELF_TESTABLE,
        notice=notice,
        shown=shown,
        error=error.message if error else None,
        error_field=error.field if error else None,
        error_provider=error_provider,
        tested=tested,
    )


async def _session(request: Request, runtime: RuntimeDep, csrf_token: str) -> Response | UiSession:
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    if not tokens_match(session.csrf_token, csrf_token):
        return csrf_failed(request, session)
    return session


async def _refused(
    request: Request,
    runtime: RuntimeDep,
    session: UiSession,
    exc: VisitmailError,
    provider: str | None = None,
) -> Response:
    """A form the service refused: the 403 page for a lower role, else the page again with
    the error beside the endpoint's form (``provider``) or at the top."""
    if isinstance(exc, PermissionDenied):
        return error_page(request, session, 403, FORBIDDEN)
    return await _render(
        request, runtime, session, status=status_for(exc), error=exc, error_provider=provider
    )


def _provider(value: str) -> RelayProvider:
    return svc.parse_provider(value)


@router.get(PATH)
async def relay_webhooks_page(request: Request, runtime: RuntimeDep, done: str = "") -> Response:
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    return await _render(request, runtime, session, notice=NOTICES.get(done))


@router.post(PATH + "/create")
async def relay_webhook_create(
    request: Request,
    runtime: RuntimeDep,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    provider: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    session = await _session(request, runtime, csrf_token)
    if not isinstance(session, UiSession):
        return session
    try:
        relay = _provider(provider)
        async with runtime.uow() as uow:
            change = await svc.create_endpoint(
                uow, SecretBox(runtime.keyring), session.principal, relay
            )
    except VisitmailError as exc:
        return await _refused(request, runtime, session, exc)
    shown = {"provider": relay.label, "url": base_url(request, runtime) + (change.path or "")}
    if change.password:
        shown |= {"username": change.endpoint.username or "", "password": change.password}
    return await _render(request, runtime, session, status=201, shown=shown)


@router.post(PATH + "/{provider}/verification")
async def relay_webhook_verification(
    request: Request,
    runtime: RuntimeDep,
    provider: str,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    public_key: Annotated[str, Form(max_length=2000)] = "",
    signing_key: Annotated[str, Form(max_length=300)] = "",
    username: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=300)] = "",
    generate_password: Annotated[str, Form(max_length=10)] = "",
    topic_arn: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    session = await _session(request, runtime, csrf_token)
    if not isinstance(session, UiSession):
        return session
    try:
        relay = _provider(provider)
        used = svc.Verification(
            public_key=public_key if relay is RelayProvider.SENDGRID else None,
            signing_key=signing_key if relay is RelayProvider.MAILGUN else None,
            username=(username or None) if relay in svc.BASIC_AUTH else None,
            password=(password or None) if relay in svc.BASIC_AUTH else None,
            topic_arn=topic_arn if relay is RelayProvider.SES else None,
        )
        async with runtime.uow() as uow:
            change = await svc.configure_endpoint(
                uow,
                SecretBox(runtime.keyring),
                session.principal,
                relay,
                used,
                generate_password=bool(generate_password) and not password,
            )
    except VisitmailError as exc:
        return await _refused(request, runtime, session, exc, provider)
    if change.password:
        shown = {
            "provider": relay.label,
            "username": change.endpoint.username or "",
            "password": change.password,
        }
        return await _render(request, runtime, session, shown=shown, notice=NOTICES["saved"])
    return RedirectResponse(PATH + "?" + urlencode({"done": "saved"}), status_code=303)


@router.post(PATH + "/{provider}/self-test")
async def relay_webhook_self_test(
    request: Request,
    runtime: RuntimeDep,
    provider: str,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    session = await _session(request, runtime, csrf_token)
    if not isinstance(session, UiSession):
        return session
    try:
        relay = _provider(provider)
        async with runtime.uow() as uow:
            result = await svc.self_test(
                uow, SecretBox(runtime.keyring), sns_client(request), session.principal, relay
            )
    except VisitmailError as exc:
        return await _refused(request, runtime, session, exc, provider)
    return await _render(request, runtime, session, tested=(relay.label, result))


@router.post(PATH + "/{provider}/delete")
async def relay_webhook_delete(
    request: Request,
    runtime: RuntimeDep,
    provider: str,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    session = await _session(request, runtime, csrf_token)
    if not isinstance(session, UiSession):
        return session
    try:
        async with runtime.uow() as uow:
            await svc.delete_endpoint(uow, session.principal, _provider(provider))
    except PermissionDenied:
        return error_page(request, session, 403, FORBIDDEN)
    except NotFound as exc:
        return error_page(request, session, 404, exc.message)
    return RedirectResponse(PATH + "?" + urlencode({"done": "deleted"}), status_code=303)
