"""The admin's "Outgoing mail server" page: the SMTP settings form, the connection test,
auto-detect, the settings' audit log and the server's health.

Thin shell: parse the form, call one service from ``services.smtp_config``, render the
result or the error next to its field. The DKIM section (``services.dkim``) has two forms of
its own: generate a key (``POST /settings/smtp/dkim``) and choose the signing key / turn
signing on or off (``POST /settings/smtp/dkim/state``); the private key is never on the
page. The form's field names are the service's dotted
field names (``proxy.host``), so an :class:`InvalidInput` lands next to the right input.

Secrets (``password``, ``proxy.password``, ``tls.client_key_pem``) are write-only: the page
only says whether one is stored; a typed value replaces it, the "clear" action removes it,
anything else keeps it. Neither a re-rendered form nor any JSON answer echoes a secret.
``POST /settings/smtp/test`` and ``/autodetect`` answer JSON for ``smtp.js``; every POST
checks the session's CSRF token.

OAuth2 (``auth_method`` ``oauth2``): the ``oauth.*`` fields, of which only those the chosen
provider uses are read; its secrets are write-only like the password. For saved delegated
settings a panel shows the connection (mailbox, refresh token stored, last refresh, a
Reconnect hint after ``invalid_grant``; never a token), the redirect URI to register, and
the Connect form (``web/ui/oauth_pages.py``). The page's CSP lets that form continue to the
operator's sign-in origins.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.datastructures import FormData

from visitmail.adapters.dkim.keys import DkimpyKeys
from visitmail.config import Settings
from visitmail.domain.addresses import normalize_email
from visitmail.domain.diagnosis import DiagnosisReport, Step
from visitmail.domain.dkim import check_algorithm, default_selector, txt_strings, zone_line
from visitmail.domain.errors import InvalidInput, VisitmailError
from visitmail.domain.oauth import GenericGrant, OAuthProvider, OAuthSettings
from visitmail.domain.oauth_connect import provider_name
from visitmail.domain.roles import Role
from visitmail.domain.smtp_presets import PRESETS, preset_host
from visitmail.domain.smtp_settings import (
    DEFAULT_PORTS,
    AuthMethod,
    Limits,
    ProxyKind,
    ProxySettings,
    Security,
    SmtpSettings,
    Timeouts,
    TlsOptions,
)
from visitmail.oauth_wiring import build_token_service, connect_config, token_policy
from visitmail.services import dkim, identity, sender_domain, smtp_config
from visitmail.services.clock import utcnow
from visitmail.services.outbox_ports import ServerHealth
from visitmail.services.ports import SmtpSecretField, StoredOAuth
from visitmail.services.smtp_config import SecretChanges, SmtpSettingsView
from visitmail.web.api.domain_check_schemas import DomainCheckOut
from visitmail.web.api.smtp_schemas import SmtpAutodetectOut, SmtpTestOut, StepOut
from visitmail.web.deps import RuntimeDep
from visitmail.web.errors import error_body, status_for
from visitmail.web.security_headers import policy_with_form_targets
from visitmail.web.smtp_wiring import (
    DiagnoserDep,
    DomainCheckDep,
    SecretBoxDep,
    get_domain_check,
    note_for_dev_inbox,
)
from visitmail.web.ui.code_spans import code_spans
from visitmail.web.ui.pages import render, templates, to_login
from visitmail.web.ui.session import UiSession, current_session, tokens_match

router = APIRouter(include_in_schema=False)
templates.env.filters["code_spans"] = code_spans
E = TypeVar("E", Security, AuthMethod, ProxyKind, OAuthProvider, GenericGrant)

PAGE = "/settings/smtp"
SECRET_FIELDS = frozenset(s.value for s in SmtpSecretField)
MAX_FIELD = 100_000  # PEM text; the body-size limit bounds the whole form anyway
MAX_QUERY_TEXT = 2_000  # the domain-check form's fields; the service validates the rest

SECURITY_CHOICES: tuple[tuple[str, str, str], ...] = (
    ("starttls", "STARTTLS", "STARTTLS required, usually 587"),
    ("tls", "TLS", "implicit TLS, usually 465"),
    (
        "none",
        "None",
        "unencrypted: passwords are refused unless the operator allows it",
    ),
)
PROXY_CHOICES: tuple[tuple[str, str], ...] = (
    ("none", "No proxy"),
    ("socks5", "SOCKS5"),
    ("socks4", "SOCKS4"),
    ("http", "HTTP CONNECT"),
)
AUTH_CHOICES: tuple[tuple[str, str], ...] = (
    ("auto", "Automatic (strongest offered)"),
    ("plain", "PLAIN"),
    ("login", "LOGIN"),
    ("cram-md5", "CRAM-MD5"),
    ("oauth2", "OAuth2 (Microsoft 365, Google, token endpoint)"),
)
OAUTH_PROVIDER_CHOICES: tuple[tuple[str, str], ...] = (
    ("microsoft365_delegated", "Microsoft 365: sign in with the mailbox"),
    ("google_delegated", "Google Workspace: sign in with the mailbox"),
    ("microsoft365_app", "Microsoft 365: app-only (client credentials)"),
    ("google_service_account", "Google: service account (domain-wide delegation)"),
    ("generic", "Other provider (token endpoint)"),
)
GRANT_CHOICES: tuple[tuple[str, str], ...] = (
    ("client_credentials", "Client credentials"),
    ("refresh_token", "Refresh token"),
)
_MICROSOFT = (OAuthProvider.MICROSOFT365_DELEGATED, OAuthProvider.MICROSOFT365_APP)


# --- form parsing ---------------------------------------------------------------------------


def _text(form: Mapping[str, str], name: str) -> str | None:
    value = form.get(name, "")
    return value if value.strip() else None


def _whole(form: Mapping[str, str], name: str) -> int | None:
    raw = form.get(name, "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput("must be a whole number", field=name) from None


def _seconds(form: Mapping[str, str], name: str, default: float) -> float:
    raw = form.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise InvalidInput("must be a number of seconds", field=name) from None


def _choice(form: Mapping[str, str], name: str, enum: type[E], default: E) -> E:
    raw = form.get(name, "").strip()
    if not raw:
        return default
    try:
        return enum(raw)
    except ValueError:
        raise InvalidInput("choose one of the listed options", field=name) from None


def form_values(data: FormData) -> dict[str, str]:
    """The submitted text fields (uploads ignored), each bounded."""
    values: dict[str, str] = {}
    for key, value in data.multi_items():
        if isinstance(value, str) and len(key) <= 64:
            values[key] = value[:MAX_FIELD]
    return values


def parse_settings(form: Mapping[str, str]) -> SmtpSettings:
    """The settings in the form, not yet validated (the service validates and names the
    field); :class:`InvalidInput` for a number or choice that does not parse."""
    security = _choice(form, "security", Security, Security.STARTTLS)
    port = _whole(form, "port")
    defaults_t, defaults_l = Timeouts(), Limits()
    max_connections = _whole(form, "limits.max_connections")
    per_connection = _whole(form, "limits.max_messages_per_connection")
    return SmtpSettings(
        host=form.get("host", ""),
        port=port if port is not None else DEFAULT_PORTS[security],
        security=security,
        sender_email=form.get("sender_email", ""),
        sender_name=_text(form, "sender_name"),
        reply_to=_text(form, "reply_to"),
        username=_text(form, "username"),
        auth_method=_choice(form, "auth_method", AuthMethod, AuthMethod.AUTO),
        helo_name=_text(form, "helo_name"),
        timeouts=Timeouts(
            connect=_seconds(form, "timeouts.connect", defaults_t.connect),
            command=_seconds(form, "timeouts.command", defaults_t.command),
            overall=_seconds(form, "timeouts.overall", defaults_t.overall),
        ),
        tls=TlsOptions(
            ca_pem=_text(form, "tls.ca_pem"),
            pinned_sha256=_text(form, "tls.pinned_sha256"),
            client_cert_pem=_text(form, "tls.client_cert_pem"),
        ),
        proxy=ProxySettings(
            kind=_choice(form, "proxy.kind", ProxyKind, ProxyKind.NONE),
            host=_text(form, "proxy.host"),
            port=_whole(form, "proxy.port"),
            username=_text(form, "proxy.username"),
        ),
        limits=Limits(
            max_connections=max_connections or defaults_l.max_connections,
            max_messages_per_connection=per_connection or defaults_l.max_messages_per_connection,
            per_minute=_whole(form, "limits.per_minute"),
            per_hour=_whole(form, "limits.per_hour"),
            per_day=_whole(form, "limits.per_day"),
            recipients_per_day=_whole(form, "limits.recipients_per_day"),
        ),
        preset=_text(form, "preset"),
        oauth=parse_oauth(form),
    )


def parse_oauth(form: Mapping[str, str]) -> OAuthSettings | None:
    """The OAuth settings when the form chose ``oauth2``; only the fields the chosen
    provider uses are read (a tenant left over from Microsoft does not stop Google)."""
    if form.get("auth_method", "").strip() != AuthMethod.OAUTH2.value:
        return None
    p = _choice(form, "oauth.provider", OAuthProvider, OAuthProvider.MICROSOFT365_DELEGATED)
    generic = p is OAuthProvider.GENERIC
    return OAuthSettings(
        provider=p,
        client_id=_text(form, "oauth.client_id"),
        tenant_id=_text(form, "oauth.tenant_id") if p in _MICROSOFT else None,
        token_url=_text(form, "oauth.token_url") if generic else None,
        scopes=tuple(form.get("oauth.scopes", "").split()) if generic else (),
        include_imap=p.delegated and form.get("oauth.include_imap", "") not in ("", "off"),
        grant=_choice(form, "oauth.grant", GenericGrant, GenericGrant.CLIENT_CREDENTIALS)
        if generic
        else GenericGrant.CLIENT_CREDENTIALS,
        client_cert_pem=_text(form, "oauth.client_cert_pem")
        if p is OAuthProvider.MICROSOFT365_APP
        else None,
    )


def parse_secret_changes(form: Mapping[str, str]) -> SecretChanges:
    """Per secret: the "clear" action clears it, a typed value replaces it, else it is kept
    (absent from the changes)."""
    changes: dict[SmtpSecretField, str | None] = {}
    for secret in SmtpSecretField:
        if secret is SmtpSecretField.OAUTH_ACCESS_TOKEN:
            continue  # the token service's cache, never entered
        action = form.get(f"{secret.value}_action", "")
        typed = form.get(secret.value, "")
        if action == "clear":
            changes[secret] = None
        elif typed:
            changes[secret] = typed
    return changes


def _settings_form(settings: SmtpSettings | None) -> dict[str, str]:
    """The form's text values for stored settings (or the blank form's defaults)."""
    if settings is None:
        t, lim = Timeouts(), Limits()
        return {
            "security": "starttls",
            "port": "587",
            "auth_method": "auto",
            "proxy.kind": "none",
            "timeouts.connect": f"{t.connect:g}",
            "timeouts.command": f"{t.command:g}",
            "timeouts.overall": f"{t.overall:g}",
            "limits.max_connections": str(lim.max_connections),
            "limits.max_messages_per_connection": str(lim.max_messages_per_connection),
            "oauth.provider": OAuthProvider.MICROSOFT365_DELEGATED.value,
            "oauth.grant": GenericGrant.CLIENT_CREDENTIALS.value,
        }

    def s(value: object) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)

    return {
        "preset": s(settings.preset),
        "host": settings.host,
        "port": s(settings.port),
        "security": settings.security.value,
        "auth_method": settings.auth_method.value,
        "username": s(settings.username),
        "sender_email": settings.sender_email,
        "sender_name": s(settings.sender_name),
        "reply_to": s(settings.reply_to),
        "helo_name": s(settings.helo_name),
        "timeouts.connect": s(settings.timeouts.connect),
        "timeouts.command": s(settings.timeouts.command),
        "timeouts.overall": s(settings.timeouts.overall),
        "tls.ca_pem": s(settings.tls.ca_pem),
        "tls.pinned_sha256": s(settings.tls.pinned_sha256),
        "tls.client_cert_pem": s(settings.tls.client_cert_pem),
        "proxy.kind": settings.proxy.kind.value,
        "proxy.host": s(settings.proxy.host),
        "proxy.port": s(settings.proxy.port),
        "proxy.username": s(settings.proxy.username),
        "limits.max_connections": s(settings.limits.max_connections),
        "limits.max_messages_per_connection": s(settings.limits.max_messages_per_connection),
        "limits.per_minute": s(settings.limits.per_minute),
        "limits.per_hour": s(settings.limits.per_hour),
        "limits.per_day": s(settings.limits.per_day),
        "limits.recipients_per_day": s(settings.limits.recipients_per_day),
        **_oauth_form(settings.oauth),
    }


def _oauth_form(oauth: OAuthSettings | None) -> dict[str, str]:
    if oauth is None:
        return {
            "oauth.provider": OAuthProvider.MICROSOFT365_DELEGATED.value,
            "oauth.grant": GenericGrant.CLIENT_CREDENTIALS.value,
        }
    return {
        "oauth.provider": oauth.provider.value,
        "oauth.client_id": oauth.client_id or "",
        "oauth.tenant_id": oauth.tenant_id or "",
        "oauth.token_url": oauth.token_url or "",
        "oauth.scopes": " ".join(oauth.scopes),
        "oauth.include_imap": "on" if oauth.include_imap else "",
        "oauth.grant": oauth.grant.value,
        "oauth.client_cert_pem": oauth.client_cert_pem or "",
    }


def _presets_json() -> list[dict[str, Any]]:
    return [
        {
            "id": p.id,
            "name": p.name,
            "host": preset_host(p),
            "port": p.port,
            "security": p.security.value,
            "alternatives": [f"{a.port} ({a.security.value})" for a in p.alternatives],
            "username_hint": p.username_hint,
            "username": p.username,
            "credential_hint": p.credential_hint,
            "note": p.note,
            "limits": {
                "per_minute": p.limits.per_minute,
                "per_hour": p.limits.per_hour,
                "per_day": p.limits.per_day,
                "recipients_per_day": p.limits.recipients_per_day,
                "max_connections": p.limits.max_connections,
            },
            "limits_note": p.limits_note,
        }
        for p in PRESETS
    ]


# --- page -----------------------------------------------------------------------------------


def _forbidden(request: Request, session: UiSession) -> HTMLResponse:
    return render(
        request,
        "error.html",
        session,
        status=403,
        message="Only admins see and change the organization's outgoing mail server.",
    )


def _csrf_failed(request: Request, session: UiSession) -> HTMLResponse:
    return render(
        request,
        "error.html",
        session,
        status=403,
        message="The form expired or was not sent from this site (CSRF check failed). "
        "Reload the page and try again.",
    )


async def _page(
    request: Request,
    runtime: RuntimeDep,
    session: UiSession,
    *,
    status: int = 200,
    form: dict[str, str] | None = None,
    error: VisitmailError | None = None,
    saved: bool = False,
    dkim_error: VisitmailError | None = None,
    dkim_form: dict[str, str] | None = None,
    dkim_notice: str | None = None,
    domain: DomainPanel | None = None,
    connected: bool = False,
) -> HTMLResponse:
    principal = session.principal
    view: SmtpSettingsView | None = None
    load_error: str | None = None
    async with runtime.uow() as uow:
        try:
            view = await smtp_config.get_settings(uow, principal)
        except VisitmailError as exc:
            if exc.code != "not_configured":
                load_error = exc.message
        dkim_status = await dkim.get_status(uow, principal) if view is not None else None
        audit = await smtp_config.list_audit(uow, principal, limit=50)
        users = await identity.list_users(uow, principal)
        health = await uow.health.get(principal.organization_id)
        tokens = await uow.oauth_tokens.get(principal.organization_id)
    emails = {u.id: u.email for u in users}
    secrets_set = view.secrets_set if view else frozenset()
    page = render(
        request,
        "smtp_settings.html",
        session,
        status=status,
        form=form if form is not None else _settings_form(view.settings if view else None),
        configured=view is not None,
        warnings=view.warnings if view and form is None else [],
        password_set=SmtpSecretField.PASSWORD in secrets_set,
        proxy_password_set=SmtpSecretField.PROXY_PASSWORD in secrets_set,
        client_key_set=SmtpSecretField.CLIENT_KEY in secrets_set,
        oauth_set={s.value: s in secrets_set for s in SmtpSecretField if s.is_oauth},
        connect=_connect_status(request, runtime, view, tokens, health),
        connected=connected,
        updated_at=view.updated_at if view else None,
        updated_by=emails.get(view.updated_by) if view and view.updated_by else None,
        error=error.message if error else load_error,
        error_field=error.field if error else None,
        saved=saved,
        audit=[
            {
                "at": e.at,
                "who": emails.get(e.actor_id, "a removed user") if e.actor_id else "the operator",
                "action": e.action.rsplit(".", 1)[-1].replace("_", " "),
                "fields": list(e.fields),
            }
            for e in audit
        ],
        health=health,
        dkim=dkim_status,
        dkim_error=dkim_error.message if dkim_error else None,
        dkim_error_field=dkim_error.field if dkim_error else None,
        dkim_form=dkim_form or {},
        dkim_notice=dkim_notice,
        dkim_default_selector=default_selector(utcnow()),
        dkim_strings=lambda key: txt_strings(key.record_value),
        dkim_zone_line=lambda key: zone_line(key.record_name, txt_strings(key.record_value)),
        presets=_presets_json(),
        security_choices=SECURITY_CHOICES,
        proxy_choices=PROXY_CHOICES,
        auth_choices=AUTH_CHOICES,
        domain=domain or DomainPanel(),
        oauth_provider_choices=OAUTH_PROVIDER_CHOICES,
        grant_choices=GRANT_CHOICES,
    )
    # "Connect" posts here and is redirected to the provider's sign-in page.
    page.headers["content-security-policy"] = policy_with_form_targets(
        sign_in_origins(runtime.settings)
    )
    return page


def sign_in_origins(settings: Settings) -> list[str]:
    """The origins of the operator's OAuth sign-in pages (Microsoft, Google)."""
    origins = []
    for url in (settings.oauth_microsoft_authority, settings.oauth_google_authorization_url):
        parts = urlsplit(url)
        origins.append(f"{parts.scheme}://{parts.netloc}")
    return origins


_RECONNECT_WORDS = ("invalid_grant", "expired or revoked", "Reconnect the account")


def _connect_status(
    request: Request,
    runtime: RuntimeDep,
    view: SmtpSettingsView | None,
    tokens: StoredOAuth | None,
    health: ServerHealth | None,
) -> dict[str, Any] | None:
    """What the Connect panel shows for saved delegated OAuth settings (never a token):
    the mailbox, whether a refresh token is stored, the last refresh, and whether the last
    failure says the sign-in must be repeated."""
    if view is None or view.settings.oauth is None or not view.settings.oauth.provider.delegated:
        return None
    oauth = view.settings.oauth
    refreshed_at = tokens.refreshed_at if tokens else None
    failure = (
        " ".join(t for t in (health.paused_reason, health.last_failure) if t) if health else ""
    )
    failed_after = (
        health is not None
        and health.last_failure_at is not None
        and (refreshed_at is None or health.last_failure_at > refreshed_at)
    )
    return {
        "provider": oauth.provider.value,
        "provider_name": provider_name(oauth.provider),
        "mailbox": view.settings.username,
        "refresh_token_set": view.is_set(SmtpSecretField.OAUTH_REFRESH_TOKEN),
        "refreshed_at": refreshed_at,
        "access_token_expires_at": tokens.access_token_expires_at if tokens else None,
        "reconnect": failed_after and any(w in failure for w in _RECONNECT_WORDS),
        "redirect_uri": connect_config(runtime, str(request.base_url)).redirect_uri,
    }


@dataclass(frozen=True, slots=True)
class DomainPanel:
    """The "Sender domain" section: the asked domain and selectors, then the report or
    the error that stopped the check."""

    checked: bool = False
    domain: str = ""
    selectors: str = ""
    report: DomainCheckOut | None = None
    error: str | None = None
    error_field: str | None = None


async def _domain_panel(request: Request, runtime: RuntimeDep, session: UiSession) -> DomainPanel:
    """Run the check the section's form asked for (``?domain_check=1``)."""
    params = request.query_params
    domain = params.get("domain", "")[:MAX_QUERY_TEXT].strip()
    selectors_text = params.get("selectors", "")[:MAX_QUERY_TEXT]
    selectors = [p for p in selectors_text.replace(",", " ").split() if p]
    check = get_domain_check(request)
    try:
        async with runtime.uow(read_only=True) as uow:
            report = await sender_domain.check_for_organization(
                uow,
                check.resolver,
                session.principal,
                domain=domain or None,
                selectors=selectors,
                organizational_domain=check.organizational_domain,
            )
    except VisitmailError as exc:
        return DomainPanel(True, domain, selectors_text, None, exc.message, exc.field)
    return DomainPanel(True, domain, selectors_text, DomainCheckOut.of(report))


@router.get(PAGE)
async def smtp_page(request: Request, runtime: RuntimeDep) -> Response:
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    if not session.principal.role.at_least(Role.ADMIN):
        return _forbidden(request, session)
    q = request.query_params
    notice = DKIM_NOTICES.get(q.get("dkim", ""))
    domain = None
    if q.get("domain_check") == "1":
        domain = await _domain_panel(request, runtime, session)
    return await _page(
        request,
        runtime,
        session,
        saved=q.get("saved") == "1",
        dkim_notice=notice,
        domain=domain,
        connected=q.get("connected") == "1",
    )


@router.post(PAGE)
async def smtp_save(request: Request, runtime: RuntimeDep, box: SecretBoxDep) -> Response:
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    if not session.principal.role.at_least(Role.ADMIN):
        return _forbidden(request, session)
    form = form_values(await request.form())
    if not tokens_match(session.csrf_token, form.get("csrf_token")):
        return _csrf_failed(request, session)
    # Re-rendered values never include a secret.
    kept = {k: v for k, v in form.items() if k not in SECRET_FIELDS and k != "csrf_token"}
    try:
        settings = parse_settings(form)
        async with runtime.uow() as uow:
            await smtp_config.put_settings(
                uow,
                box,
                session.principal,
                settings,
                parse_secret_changes(form),
                allow_plaintext_auth=runtime.settings.allow_plaintext_auth,
                policy=token_policy(runtime),
            )
    except VisitmailError as exc:
        return await _page(request, runtime, session, status=status_for(exc), form=kept, error=exc)
    return RedirectResponse(f"{PAGE}?saved=1", status_code=303)


async def _json_guard(
    request: Request, runtime: RuntimeDep
) -> tuple[UiSession, dict[str, str]] | JSONResponse:
    session = await current_session(request, runtime)
    if session is None:
        return JSONResponse(
            error_body("not_authenticated", "Your session ended: log in again."), status_code=401
        )
    if not session.principal.role.at_least(Role.ADMIN):
        return JSONResponse(
            error_body("forbidden", "Only admins test the outgoing mail server."), status_code=403
        )
    form = form_values(await request.form())
    token = request.headers.get("x-csrf-token") or form.get("csrf_token")
    if not tokens_match(session.csrf_token, token):
        return JSONResponse(
            error_body("csrf_failed", "The page expired (CSRF check failed): reload it."),
            status_code=403,
        )
    return session, form


def _error_json(exc: VisitmailError) -> JSONResponse:
    return JSONResponse(error_body(exc.code, exc.message, exc.field), status_code=status_for(exc))


@router.post(f"{PAGE}/test")
async def smtp_test(
    request: Request,
    runtime: RuntimeDep,
    box: SecretBoxDep,
    diagnoser: DiagnoserDep,
    domain_check: DomainCheckDep,
) -> Response:
    """The connection test on the values in the form (unsaved), stored secrets merged per
    the service's rules; answers :class:`SmtpTestOut` as JSON."""
    guarded = await _json_guard(request, runtime)
    if isinstance(guarded, JSONResponse):
        return guarded
    session, form = guarded
    try:
        settings = parse_settings(form)
        secret_changes = parse_secret_changes(form)
        send_to = _text(form, "send_to")
        if send_to:
            normalize_email(send_to, field="send_to")
    except VisitmailError as exc:
        return _error_json(exc)

    async def run(on_step: Callable[[Step], None] | None) -> DiagnosisReport:
        async with runtime.uow() as uow:
            report = await smtp_config.diagnose_settings(
                uow,
                box,
                diagnoser,
                session.principal,
                inline=settings,
                inline_secrets=secret_changes,
                send_to=send_to,
                on_step=on_step,
                domain_check=domain_check,
                tokens=build_token_service(runtime),
                policy=token_policy(runtime),
            )
        note_for_dev_inbox(request, session.principal, report)
        return report

    if NDJSON in request.headers.get("accept", ""):
        return StreamingResponse(_stream(run), media_type=NDJSON)
    try:
        report = await run(None)
    except VisitmailError as exc:
        return _error_json(exc)
    return JSONResponse(SmtpTestOut.of(report).model_dump(mode="json"))


NDJSON = "application/x-ndjson"


async def _stream(
    run: Callable[[Callable[[Step], None] | None], Coroutine[Any, Any, DiagnosisReport]],
) -> AsyncIterator[bytes]:
    """The test as it runs: one JSON line per step as soon as it passed or failed, then
    the whole report (``{"report": …}``) or an error (``{"error": …}``)."""
    steps: asyncio.Queue[Step] = asyncio.Queue()
    task = asyncio.create_task(run(steps.put_nowait))
    while not task.done() or not steps.empty():
        getter = asyncio.ensure_future(steps.get())
        await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
        if getter.done():
            step = StepOut.of(getter.result()).model_dump(mode="json")
            yield (json.dumps({"step": step}) + "\n").encode()
        else:
            getter.cancel()
    try:
        report = task.result()
    except VisitmailError as exc:
        yield (json.dumps(error_body(exc.code, exc.message, exc.field)) + "\n").encode()
        return
    yield (json.dumps({"report": SmtpTestOut.of(report).model_dump(mode="json")}) + "\n").encode()


@router.post(f"{PAGE}/autodetect")
async def smtp_autodetect(
    request: Request, runtime: RuntimeDep, box: SecretBoxDep, diagnoser: DiagnoserDep
) -> Response:
    """Try the usual port x security combinations on the form's host; answers
    :class:`SmtpAutodetectOut` as JSON."""
    guarded = await _json_guard(request, runtime)
    if isinstance(guarded, JSONResponse):
        return guarded
    session, form = guarded
    try:
        settings = parse_settings(form)
        async with runtime.uow() as uow:
            report = await smtp_config.autodetect(
                uow,
                box,
                diagnoser,
                session.principal,
                inline=settings,
                inline_secrets=parse_secret_changes(form),
            )
    except VisitmailError as exc:
        return _error_json(exc)
    return JSONResponse(SmtpAutodetectOut.of(report).model_dump(mode="json"))


# --- DKIM -----------------------------------------------------------------------------------

DKIM_NOTICES = {
    "generated": "Key generated. Publish its record in DNS; then select it and turn signing on.",
    "saved": "DKIM choice saved.",
}


async def _dkim_form(
    request: Request, runtime: RuntimeDep
) -> tuple[UiSession, dict[str, str]] | Response:
    session = await current_session(request, runtime)
    if session is None:
        return to_login()
    if not session.principal.role.at_least(Role.ADMIN):
        return _forbidden(request, session)
    form = form_values(await request.form())
    if not tokens_match(session.csrf_token, form.get("csrf_token")):
        return _csrf_failed(request, session)
    return session, form


@router.post(f"{PAGE}/dkim")
async def dkim_generate(request: Request, runtime: RuntimeDep, box: SecretBoxDep) -> Response:
    """Generate a DKIM key from the form (algorithm, selector, domain; empty = default)."""
    guarded = await _dkim_form(request, runtime)
    if isinstance(guarded, Response):
        return guarded
    session, form = guarded
    kept = {k: form.get(k, "")[:300] for k in ("algorithm", "selector", "domain")}
    try:
        algorithm = check_algorithm(form.get("algorithm", "rsa") or "rsa")
        async with runtime.uow() as uow:
            await dkim.generate_key(
                uow,
                box,
                DkimpyKeys(),
                session.principal,
                algorithm=algorithm,
                selector=_text(form, "selector"),
                domain=_text(form, "domain"),
            )
    except VisitmailError as exc:
        return await _page(
            request, runtime, session, status=status_for(exc), dkim_error=exc, dkim_form=kept
        )
    return RedirectResponse(f"{PAGE}?dkim=generated#dkim", status_code=303)


@router.post(f"{PAGE}/dkim/state")
async def dkim_state(request: Request, runtime: RuntimeDep) -> Response:
    """Turn signing on or off (the checkbox) and select the key that signs (the radio)."""
    guarded = await _dkim_form(request, runtime)
    if isinstance(guarded, Response):
        return guarded
    session, form = guarded
    try:
        raw_id = form.get("active_key_id", "").strip()
        try:
            key_id = UUID(raw_id) if raw_id else None
        except ValueError:
            raise InvalidInput("choose one of the listed keys", field="active_key_id") from None
        async with runtime.uow() as uow:
            await dkim.update_state(
                uow, session.principal, enabled=form.get("enabled") == "on", active_key_id=key_id
            )
    except VisitmailError as exc:
        return await _page(request, runtime, session, status=status_for(exc), dkim_error=exc)
    return RedirectResponse(f"{PAGE}?dkim=saved#dkim", status_code=303)
