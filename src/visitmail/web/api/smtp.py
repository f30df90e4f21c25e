"""The organization's SMTP settings: read, replace, test, auto-detect, presets, audit.

Admin only (other roles get 403). Before the first save, ``GET /api/v1/smtp-settings``
answers 404 with the error code ``not_configured``. Secrets (``password``,
``proxy.password``, ``tls.client_key_pem``) are write-only: a ``PUT`` without one keeps the
stored value, ``null`` or ``""`` clears it; responses carry ``password_set``,
``proxy.password_set`` and ``tls.client_key_set`` instead. OAuth2 (``auth_method:
"oauth2"`` with an ``oauth`` object): its secrets (``oauth.client_secret``,
``oauth.private_key_pem``, ``oauth.service_account_key``, ``oauth.refresh_token``) are
write-only the same way and shown as ``oauth.*_set``.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Query, Request

from visitmail.domain.dns_answers import normalize_selectors
from visitmail.oauth_wiring import build_token_service, token_policy
from visitmail.services import sender_domain, smtp_config
from visitmail.web.api.domain_check_schemas import DomainCheckOut
from visitmail.web.api.schemas import ErrorResponse
from visitmail.web.api.smtp_schemas import (
    AuditEntryOut,
    PresetOut,
    RefreshTokenIn,
    SmtpAutodetectIn,
    SmtpAutodetectOut,
    SmtpSettingsIn,
    SmtpSettingsOut,
    SmtpTestIn,
    SmtpTestOut,
)
from visitmail.web.deps import AdminDep, ReadUowDep, RuntimeDep, UowDep
from visitmail.web.smtp_wiring import (
    DiagnoserDep,
    DomainCheckDep,
    SecretBoxDep,
    note_for_dev_inbox,
)

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorResponse},
    403: {"model": ErrorResponse},
    404: {"model": ErrorResponse, "description": "code `not_configured`: nothing saved yet"},
    409: {"model": ErrorResponse, "description": "code `secret_unreadable`: master key missing"},
    422: {"model": ErrorResponse},
}

router = APIRouter(prefix="/api/v1/smtp-settings", tags=["smtp settings"], responses=ERRORS)


@router.get("", summary="The organization's SMTP settings (admin; secrets never shown)")
async def get_settings(principal: AdminDep, uow: ReadUowDep) -> SmtpSettingsOut:
    return SmtpSettingsOut.of(await smtp_config.get_settings(uow, principal))


@router.put("", summary="Replace the SMTP settings (admin; omitted secrets are kept)")
async def put_settings(
    body: SmtpSettingsIn,
    principal: AdminDep,
    uow: UowDep,
    box: SecretBoxDep,
    runtime: RuntimeDep,
) -> SmtpSettingsOut:
    view = await smtp_config.put_settings(
        uow,
        box,
        principal,
        body.to_domain(),
        body.secret_changes(),
        allow_plaintext_auth=runtime.settings.allow_plaintext_auth,
        policy=token_policy(runtime),
    )
    return SmtpSettingsOut.of(view)


@router.put(
    "/oauth/refresh-token",
    summary="Store a refresh token for the OAuth2 mailbox (admin; delegated providers)",
    description="For a refresh token obtained outside visitmail's sign-in. Replaces the "
    "stored one and drops the cached access token; the value is never shown again.",
)
async def put_refresh_token(
    body: RefreshTokenIn, principal: AdminDep, uow: UowDep, box: SecretBoxDep
) -> SmtpSettingsOut:
    view = await smtp_config.store_refresh_token(uow, box, principal, body.refresh_token)
    return SmtpSettingsOut.of(view)


@router.post(
    "/test",
    summary="Run the step-by-step connection test (admin)",
    description="Tests the saved settings, or `settings` given inline before saving them. "
    "With `send_to` a test message is sent too. Stops at the first failed step; the rest "
    "are `skipped`. Bounded by `timeouts.overall`. With OAuth2 the `token` and `scope` "
    "steps come before `auth`. The sender domain's SPF, DKIM and DMARC are checked "
    "alongside (`domain`); that check is informative and never fails the test.",
)
async def run_connection_test(
    request: Request,
    principal: AdminDep,
    uow: UowDep,
    box: SecretBoxDep,
    diagnoser: DiagnoserDep,
    domain_check: DomainCheckDep,
    runtime: RuntimeDep,
    body: SmtpTestIn | None = None,
) -> SmtpTestOut:
    inline = body.settings if body else None
    selectors = normalize_selectors(body.dkim_selectors if body else [], field="dkim_selectors")
    report = await smtp_config.diagnose_settings(
        uow,
        box,
        diagnoser,
        principal,
        inline=inline.to_domain() if inline else None,
        inline_secrets=inline.secret_changes() if inline else None,
        send_to=body.send_to if body else None,
        domain_check=dataclasses.replace(domain_check, selectors=selectors),
        tokens=build_token_service(runtime),
        policy=token_policy(runtime),
    )
    note_for_dev_inbox(request, principal, report)
    return SmtpTestOut.of(report)


@router.post(
    "/autodetect",
    summary="Try the usual port and security combinations on the host (admin)",
)
async def autodetect(
    principal: AdminDep,
    uow: UowDep,
    box: SecretBoxDep,
    diagnoser: DiagnoserDep,
    body: SmtpAutodetectIn | None = None,
) -> SmtpAutodetectOut:
    inline = body.settings if body else None
    report = await smtp_config.autodetect(
        uow,
        box,
        diagnoser,
        principal,
        inline=inline.to_domain() if inline else None,
        inline_secrets=inline.secret_changes() if inline else None,
    )
    return SmtpAutodetectOut.of(report)


@router.get(
    "/domain-check",
    summary="Check the sender domain's SPF, DKIM and DMARC (admin)",
    description="Checks the domain of the saved sender address, or `domain`, for mail sent "
    "through the saved server (its preset, or the provider recognized by the host): a "
    "verdict per check (`ok`, `warning`, `error`, `unknown`), the reason in words, and the "
    "exact records to publish. `selector` (repeatable, at most 10) adds DKIM selectors to "
    "look up besides the provider's own. DNS trouble gives `unknown`, never an error.",
)
async def domain_check(
    principal: AdminDep,
    uow: ReadUowDep,
    check: DomainCheckDep,
    domain: Annotated[
        str | None, Query(max_length=300, description="default: the sender's domain")
    ] = None,
    selector: Annotated[
        list[str] | None, Query(description="a DKIM selector to look up (repeatable)")
    ] = None,
) -> DomainCheckOut:
    report = await sender_domain.check_for_organization(
        uow,
        check.resolver,
        principal,
        domain=domain,
        selectors=selector or [],
        organizational_domain=check.organizational_domain,
    )
    return DomainCheckOut.of(report)


@router.get("/presets", summary="Provider presets: host, port, security, limits (admin)")
async def presets(principal: AdminDep) -> list[PresetOut]:
    return [PresetOut.of(p) for p in smtp_config.list_presets(principal)]


@router.get("/audit", summary="Who changed which SMTP fields, newest first (admin)")
async def audit(
    principal: AdminDep,
    uow: ReadUowDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AuditEntryOut]:
    entries = await smtp_config.list_audit(uow, principal, limit=limit)
    return [AuditEntryOut.of(e) for e in entries]
