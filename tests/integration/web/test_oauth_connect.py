"""The browser sign-in ("Connect Microsoft 365" / "Connect Google"), on SQLite and
PostgreSQL: httpx drives the app (the admin's browser) and the real local OAuth provider
over HTTP on 127.0.0.1 (its consent page, its token endpoint with PKCE checks); the tokens
the sign-in stored then send a message through the XOAUTH2 aiosmtpd server.

Covered: the authorization URL (PKCE S256, scopes, login_hint, Google's offline access),
state tampering, reuse, expiry (the test's clock), another login session, a PKCE verifier
the provider refuses, the provider's access_denied explained, the API for headless
admins, and no code, verifier or token in any page, reply or log line."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text as sql

from tests.conftest import make_settings
from tests.integration.web.test_ui_login import log_in
from tests.support.oauth_provider import KeyPair, OAuthProvider, start_oauth_provider
from tests.support.oauth_smtp import OAuthSmtpServer, start_oauth_smtp_server
from tests.support.orgs import OrgFixture, new_org, unique_email
from tests.support.outbox import LOOPBACK, ManualClock, enqueue, make_worker, run_until
from visitmail.adapters.crypto.secret_box import SecretBox
from visitmail.domain.oauth import SCOPE_GOOGLE_MAIL, SCOPE_MS_SMTP
from visitmail.domain.outbox import MessageStatus
from visitmail.domain.roles import Role
from visitmail.oauth_wiring import build_token_service
from visitmail.runtime import Runtime, build_runtime
from visitmail.services import identity, outbox
from visitmail.services.ports import SmtpSecretField
from visitmail.web.app import create_app

PUBLIC_URL = "http://visitmail.test"
REDIRECT_URI = PUBLIC_URL + "/settings/smtp/oauth/callback"
TENANT = "contoso.onmicrosoft.com"
MAILBOX = "sales@contoso.com"
MS_CLIENT, MS_SECRET = "ms-app-1", "Ms~Client~Secret~Value~77"
G_CLIENT, G_SECRET = "g-client-1.apps.googleusercontent.com", "G-Client-Secret-Value-88"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
TICKET = re.compile(r'name="ticket" value="([^"]+)"')


@pytest.fixture(scope="module")
def provider() -> Iterator[OAuthProvider]:
    p = start_oauth_provider()
    p.register_client(MS_CLIENT, MS_SECRET)
    p.register_client(G_CLIENT, G_SECRET)
    p.register_redirect_uri(MS_CLIENT, REDIRECT_URI)
    p.register_redirect_uri(G_CLIENT, REDIRECT_URI)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture(scope="module")
async def connect_runtime(
    runtime: Runtime, database_url: str, provider: OAuthProvider, tmp_path_factory: Any
) -> AsyncIterator[Runtime]:
    """A runtime whose Microsoft and Google endpoints are the local provider (the
    ``runtime`` fixture migrated the database already)."""
    settings = make_settings(
        database_url,
        Path(tmp_path_factory.mktemp("connect-var")),
        public_url=PUBLIC_URL,
        oauth_microsoft_authority=provider.base_url,
        oauth_google_token_url=provider.google_url,
        oauth_google_authorization_url=provider.google_authorize_url,
        smtp_allowed_networks="127.0.0.0/8",
        allow_plaintext_auth=True,
    )
    rt = build_runtime(settings, fast_hashing=True)
    try:
        yield rt
    finally:
        await rt.close()


@pytest.fixture(scope="module")
def connect_app(connect_runtime: Runtime) -> FastAPI:
    return create_app(connect_runtime)


@pytest.fixture
async def browser(connect_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The admin's browser on visitmail (cookies kept, redirects followed by hand)."""
    transport = httpx.ASGITransport(app=connect_app, client=("10.77.0.1", 4000))
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as c:
        yield c


@pytest.fixture
async def org2(connect_runtime: Runtime) -> OrgFixture:
    return await new_org(connect_runtime)


@pytest.fixture
async def smtp(provider: OAuthProvider) -> AsyncIterator[OAuthSmtpServer]:
    server = await start_oauth_smtp_server(provider)
    try:
        yield server
    finally:
        await server.close()


def settings_body(port: int, *, google: bool = False) -> dict[str, Any]:
    oauth: dict[str, Any] = (
        {"provider": "google_delegated", "client_id": G_CLIENT, "client_secret": G_SECRET}
        if google
        else {
            "provider": "microsoft365_delegated",
            "tenant_id": TENANT,
            "client_id": MS_CLIENT,
            "client_secret": MS_SECRET,
        }
    )
    return {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "username": MAILBOX,
        "sender_email": MAILBOX,
        "auth_method": "oauth2",
        "oauth": oauth,
        "timeouts": {"connect": 2, "command": 5, "overall": 10},
    }


async def configure(
    browser: httpx.AsyncClient, org: OrgFixture, port: int = 2525, *, google: bool = False
) -> None:
    reply = await browser.put(
        "/api/v1/smtp-settings", headers=org.headers, json=settings_body(port, google=google)
    )
    assert reply.status_code == 200, reply.text


async def admin_csrf(browser: httpx.AsyncClient, org: OrgFixture) -> str:
    assert (await log_in(browser, org.admin.email, org.admin_password)).status_code == 303
    page = await browser.get("/settings/smtp")
    assert page.status_code == 200
    match = CSRF.search(page.text)
    assert match
    return match.group(1)


async def click_connect(browser: httpx.AsyncClient, csrf: str, provider: str = "") -> str:
    reply = await browser.post(
        "/settings/smtp/oauth/connect", data={"csrf_token": csrf, "provider": provider}
    )
    assert reply.status_code == 303, reply.text
    return reply.headers["location"]


async def consent(url: str, decision: str = "allow") -> str:
    """The admin on the provider's consent page: returns where the provider sends the
    browser back (the redirect URI with code and state, or an error)."""
    async with httpx.AsyncClient() as idp:
        page = await idp.get(url)
        assert page.status_code == 200, page.text
        assert f"visitmail wants to send mail as <strong>{MAILBOX}</strong>" in page.text
        ticket = TICKET.search(page.text)
        assert ticket
        back = await idp.post(
            str(httpx.URL(url).copy_with(path="/consent", query=None)),
            data={"ticket": ticket.group(1), "decision": decision},
        )
    assert back.status_code == 302
    location = back.headers["location"]
    assert location.startswith(REDIRECT_URI + "?")
    return location


def local(url: str) -> str:
    """The callback URL as a path for the ASGI client (its host is the public URL)."""
    parts = urlsplit(url)
    return urlunsplit(("", "", parts.path, parts.query, ""))


async def stored_tokens(rt: Runtime, org: OrgFixture) -> dict[str, str]:
    async with rt.uow() as uow:
        stored = await uow.oauth_tokens.get(org.organization.id)
    assert stored is not None
    box = SecretBox(rt.keyring)
    return {
        f.value: box.open(token, organization_id=org.organization.id, field=f.sealed_as)
        for f, token in stored.sealed.items()
        if f in (SmtpSecretField.OAUTH_REFRESH_TOKEN, SmtpSecretField.OAUTH_ACCESS_TOKEN)
    }


async def drop_access_token(rt: Runtime, org: OrgFixture) -> None:
    async with rt.uow() as uow:
        await uow.session.execute(
            sql(
                "UPDATE smtp_oauth_credentials SET access_token_enc = NULL, "
                "access_token_expires_at = NULL WHERE organization_id = :org"
            ),
            {
                "org": org.organization.id.hex
                if rt.engine.name == "sqlite"
                else str(org.organization.id)
            },
        )
        await uow.commit()


def org_key(rt: Runtime, org: OrgFixture) -> str:
    return org.organization.id.hex if rt.engine.name == "sqlite" else str(org.organization.id)


async def forget_health(rt: Runtime, org: OrgFixture) -> None:
    async with rt.uow() as uow:
        await uow.session.execute(
            sql("DELETE FROM smtp_health WHERE organization_id = :org"), {"org": org_key(rt, org)}
        )
        await uow.commit()


async def connect_by_api(browser: httpx.AsyncClient, org: OrgFixture) -> None:
    started = (
        await browser.post("/api/v1/smtp-settings/oauth/authorize", headers=org.headers)
    ).json()
    back = parse_qs(urlsplit(await consent(started["authorization_url"])).query)
    done = await browser.post(
        "/api/v1/smtp-settings/oauth/callback",
        headers=org.headers,
        json={"code": back["code"][0], "state": back["state"][0]},
    )
    assert done.status_code == 200, done.text


def app_logs(caplog: pytest.LogCaptureFixture) -> str:
    """Every log line but the test's own HTTP clients' (the browser's request URLs carry
    the code, as a browser's history does; visitmail's own token requests stay in)."""
    ours = ("visitmail.test", "/consent", "/authorize")
    return "\n".join(
        r.getMessage()
        for r in caplog.records
        if not (r.name.startswith(("httpx", "httpcore")) and any(o in r.getMessage() for o in ours))
    )


# --- the whole sign-in ------------------------------------------------------------------


async def test_connect_microsoft_then_the_stored_refresh_token_sends_mail(
    browser: httpx.AsyncClient,
    connect_runtime: Runtime,
    org2: OrgFixture,
    provider: OAuthProvider,
    smtp: OAuthSmtpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    await configure(browser, org2, smtp.port)
    csrf = await admin_csrf(browser, org2)
    page = (await browser.get("/settings/smtp")).text
    assert "Connect Microsoft 365" in page
    assert f'value="{REDIRECT_URI}"' in page  # the redirect URI to register, copyable
    assert "not connected" in page

    url = await click_connect(browser, csrf, "microsoft365_delegated")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == provider.microsoft_authorize_url(
        TENANT
    )
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert q["response_type"] == "code"
    assert q["client_id"] == MS_CLIENT
    assert q["redirect_uri"] == REDIRECT_URI
    assert q["scope"].split() == [SCOPE_MS_SMTP, "offline_access"]
    assert q["code_challenge_method"] == "S256"
    assert len(q["code_challenge"]) == 43
    assert q["login_hint"] == MAILBOX
    assert "code_verifier" not in parts.query

    back = await consent(url)
    code = parse_qs(urlsplit(back).query)["code"][0]
    done = await browser.get(local(back))
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/settings/smtp?connected=1"
    shown = await browser.get(done.headers["location"])
    assert "Connected</strong> sales@contoso.com with Microsoft 365" in shown.text
    assert "connected</span> as sales@contoso.com" in shown.text
    assert "Reconnect Microsoft 365" in shown.text

    (exchange,) = [
        r for r in provider.token_requests("authorization_code") if r.form["code"] == code
    ]
    assert exchange.form["client_secret"] == MS_SECRET
    assert exchange.form["redirect_uri"] == REDIRECT_URI
    stored = await stored_tokens(connect_runtime, org2)
    refresh = stored["oauth.refresh_token"]
    assert refresh in provider.refresh_tokens
    settings = (await browser.get("/api/v1/smtp-settings", headers=org2.headers)).json()
    assert settings["oauth"]["refresh_token_set"] is True
    audit = (await browser.get("/api/v1/smtp-settings/audit", headers=org2.headers)).json()
    assert audit[0]["action"] == "smtp_settings.oauth_connect"
    assert audit[0]["fields"] == ["oauth.refresh_token"]

    # The cached access token is dropped, so the worker must spend the stored refresh token.
    await drop_access_token(connect_runtime, org2)
    pk, message_id = await enqueue(connect_runtime, org2, ["lead@example.org"])
    tokens = build_token_service(connect_runtime, policy=LOOPBACK)
    worker = make_worker(connect_runtime, org2, tokens=tokens, allow_plaintext_auth=True)
    await worker.run_until_idle()
    async with connect_runtime.uow() as uow:
        assert (await outbox.get_message(uow, org2.principal, pk)).status is MessageStatus.SENT
    assert smtp.log.attempts == [(MAILBOX, True)]
    assert smtp.recorder.messages[0].parsed()["Message-ID"] == message_id
    spent = [
        r for r in provider.token_requests("refresh_token") if r.form["refresh_token"] == refresh
    ]
    assert len(spent) == 1  # the worker refreshed with the token the sign-in stored
    rotated = (await stored_tokens(connect_runtime, org2))["oauth.refresh_token"]
    assert rotated != refresh and rotated in provider.refresh_tokens

    secrets = [code, refresh, rotated, stored["oauth.access_token"], MS_SECRET]
    for seen in (shown.text, done.text, str(settings), str(audit), app_logs(caplog)):
        for secret in secrets:
            assert secret not in seen


async def test_connect_google_through_the_api_asks_for_offline_access(
    browser: httpx.AsyncClient, connect_runtime: Runtime, org2: OrgFixture, provider: OAuthProvider
) -> None:
    await configure(browser, org2, google=True)
    started = await browser.post("/api/v1/smtp-settings/oauth/authorize", headers=org2.headers)
    assert started.status_code == 200, started.text
    body = started.json()
    assert body["redirect_uri"] == REDIRECT_URI
    q = {k: v[0] for k, v in parse_qs(urlsplit(body["authorization_url"]).query).items()}
    assert body["authorization_url"].startswith(provider.google_authorize_url + "?")
    assert q["scope"] == SCOPE_GOOGLE_MAIL
    assert q["access_type"] == "offline"
    assert q["prompt"] == "consent"
    assert q["state"] == body["state"]

    back = parse_qs(urlsplit(await consent(body["authorization_url"])).query)
    done = await browser.post(
        "/api/v1/smtp-settings/oauth/callback",
        headers=org2.headers,
        json={"code": back["code"][0], "state": back["state"][0]},
    )
    assert done.status_code == 200, done.text
    assert done.json()["connected"] is True
    assert done.json()["mailbox"] == MAILBOX
    assert done.json()["missing_scopes"] == []
    assert done.json()["settings"]["oauth"]["refresh_token_set"] is True
    assert back["code"][0] not in done.text
    stored = await stored_tokens(connect_runtime, org2)
    assert stored["oauth.refresh_token"] in provider.refresh_tokens
    assert stored["oauth.refresh_token"] not in done.text


# --- the state ------------------------------------------------------------------------------


async def test_a_tampered_state_is_refused_and_nothing_is_stored(
    browser: httpx.AsyncClient, connect_runtime: Runtime, org2: OrgFixture
) -> None:
    await configure(browser, org2)
    url = await click_connect(browser, await admin_csrf(browser, org2))
    back = await consent(url)
    q = {k: v[0] for k, v in parse_qs(urlsplit(back).query).items()}
    q["state"] = q["state"][:-2] + ("AA" if not q["state"].endswith("AA") else "BB")
    reply = await browser.get("/settings/smtp/oauth/callback?" + urlencode(q))
    assert reply.status_code == 400
    assert "does not match a Connect started here" in reply.text
    assert "Start again with Connect" in reply.text
    assert q["code"] not in reply.text
    assert "oauth.refresh_token" not in await stored_tokens(connect_runtime, org2)


async def test_a_used_state_cannot_be_used_again(
    browser: httpx.AsyncClient, connect_runtime: Runtime, org2: OrgFixture, provider: OAuthProvider
) -> None:
    await configure(browser, org2)
    back = await consent(await click_connect(browser, await admin_csrf(browser, org2)))
    assert (await browser.get(local(back))).status_code == 303
    first = (await stored_tokens(connect_runtime, org2))["oauth.refresh_token"]
    exchanges = len(provider.token_requests("authorization_code"))

    again = await browser.get(local(back))
    assert again.status_code == 400
    assert "already used" in again.text
    assert len(provider.token_requests("authorization_code")) == exchanges  # not sent again
    assert (await stored_tokens(connect_runtime, org2))["oauth.refresh_token"] == first


async def test_a_state_older_than_ten_minutes_has_expired(
    browser: httpx.AsyncClient,
    connect_app: FastAPI,
    connect_runtime: Runtime,
    org2: OrgFixture,
    provider: OAuthProvider,
) -> None:
    clock = ManualClock()
    connect_app.state.clock = clock
    try:
        await configure(browser, org2)
        back = await consent(await click_connect(browser, await admin_csrf(browser, org2)))
        clock.advance(timedelta(minutes=10, seconds=1))
        exchanges = len(provider.token_requests("authorization_code"))
        reply = await browser.get(local(back))
    finally:
        connect_app.state.clock = None
    assert reply.status_code == 400
    assert "expired: it must be completed within 10 minutes" in reply.text
    assert len(provider.token_requests("authorization_code")) == exchanges
    assert "oauth.refresh_token" not in await stored_tokens(connect_runtime, org2)


async def test_a_state_started_in_another_login_session_is_refused(
    browser: httpx.AsyncClient,
    connect_app: FastAPI,
    connect_runtime: Runtime,
    org2: OrgFixture,
) -> None:
    await configure(browser, org2)
    back = await consent(await click_connect(browser, await admin_csrf(browser, org2)))
    transport = httpx.ASGITransport(app=connect_app, client=("10.77.0.2", 4000))
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as other:
        await log_in(other, org2.admin.email, org2.admin_password)  # a second session
        reply = await other.get(local(back))
    assert reply.status_code == 400
    assert "another user or in another login session" in reply.text
    assert "oauth.refresh_token" not in await stored_tokens(connect_runtime, org2)


async def test_a_pkce_verifier_that_does_not_match_is_refused_by_the_provider(
    browser: httpx.AsyncClient, connect_runtime: Runtime, org2: OrgFixture, provider: OAuthProvider
) -> None:
    """A code issued for another challenge (an intercepted or injected code): the
    provider refuses visitmail's verifier, and nothing is stored."""
    await configure(browser, org2)
    url = await click_connect(browser, await admin_csrf(browser, org2))
    parts = urlsplit(url)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    q["code_challenge"] = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"  # another verifier's
    back = await consent(urlunsplit(parts._replace(query=urlencode(q))))
    reply = await browser.get(local(back))
    assert reply.status_code == 400
    assert "AADSTS501481: The Code_Verifier does not match the code_challenge" in reply.text
    assert "Click Connect again" in reply.text
    (exchange,) = [
        r for r in provider.token_requests("authorization_code") if r.form["code"] in back
    ]
    assert exchange.form["code_verifier"]  # sent, and refused
    assert exchange.form["code_verifier"] not in reply.text
    assert "oauth.refresh_token" not in await stored_tokens(connect_runtime, org2)


async def test_deny_on_the_consent_page_is_explained_with_its_fix(
    browser: httpx.AsyncClient, connect_runtime: Runtime, org2: OrgFixture
) -> None:
    await configure(browser, org2)
    back = await consent(await click_connect(browser, await admin_csrf(browser, org2)), "deny")
    assert "error=access_denied" in back
    reply = await browser.get(local(back))
    assert reply.status_code == 400
    assert "the consent was refused" in reply.text
    assert "(AADSTS65004: User declined to consent to access the app)." in reply.text
    assert "grant admin consent in the Microsoft Entra admin center" in reply.text
    assert "oauth.refresh_token" not in await stored_tokens(connect_runtime, org2)


# --- who may connect what -------------------------------------------------------------------


async def test_connect_needs_saved_delegated_oauth_settings(
    browser: httpx.AsyncClient, org2: OrgFixture
) -> None:
    body = settings_body(2525)
    body.update(auth_method="plain", oauth=None, password="pw-123456")
    body["security"] = "starttls"
    assert (
        await browser.put("/api/v1/smtp-settings", headers=org2.headers, json=body)
    ).status_code == 200
    csrf = await admin_csrf(browser, org2)
    assert "oauth-connect-button" not in (await browser.get("/settings/smtp")).text
    reply = await browser.post("/settings/smtp/oauth/connect", data={"csrf_token": csrf})
    assert reply.status_code == 400
    assert "not set to OAuth2" in reply.text
    api = await browser.post("/api/v1/smtp-settings/oauth/authorize", headers=org2.headers)
    assert api.status_code == 400
    assert api.json()["error"]["code"] == "oauth_connect_failed"
    assert api.json()["error"]["field"] == "auth_method"
    assert "Fix:" in api.json()["error"]["message"]


async def test_unsaved_provider_change_and_missing_csrf_are_refused(
    browser: httpx.AsyncClient, org2: OrgFixture
) -> None:
    await configure(browser, org2)
    csrf = await admin_csrf(browser, org2)
    no_csrf = await browser.post("/settings/smtp/oauth/connect", data={"csrf_token": "x"})
    assert no_csrf.status_code == 403
    other = await browser.post(
        "/settings/smtp/oauth/connect", data={"csrf_token": csrf, "provider": "google_delegated"}
    )
    assert other.status_code == 400
    assert "Save the settings first" in other.text


async def test_only_admins_connect(
    browser: httpx.AsyncClient, connect_runtime: Runtime, org2: OrgFixture
) -> None:
    await configure(browser, org2)
    async with connect_runtime.uow() as uow:
        made = await identity.create_user(
            uow,
            connect_runtime.hasher,
            org2.principal,
            email=unique_email("manager"),
            role=Role.EVENT_MANAGER,
            display_name="Event Manager",
        )
    assert made.initial_password is not None
    reply = await log_in(browser, made.user.email, made.initial_password)
    assert reply.status_code == 303
    reply = await browser.post("/settings/smtp/oauth/connect", data={"csrf_token": "x"})
    assert reply.status_code == 403
    callback = await browser.get("/settings/smtp/oauth/callback?state=abc&code=def")
    assert callback.status_code == 403


async def test_the_api_callback_answers_json_errors_naming_the_field(
    browser: httpx.AsyncClient, org2: OrgFixture
) -> None:
    await configure(browser, org2)
    url = "/api/v1/smtp-settings/oauth/callback"
    bad = await browser.post(url, headers=org2.headers, json={"state": "nope", "code": "c"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "oauth_connect_failed"
    assert bad.json()["error"]["field"] == "state"
    missing = await browser.post(url, headers=org2.headers, json={"code": "c"})
    assert missing.status_code == 422
    assert missing.json()["error"]["field"] == "state"
    long = await browser.post(url, headers=org2.headers, json={"state": "s" * 201, "code": "c"})
    assert long.status_code == 422
    assert long.json()["error"]["field"] == "state"
    anonymous = await browser.post(url, json={"state": "s", "code": "c"})
    assert anonymous.status_code == 401


async def test_the_openapi_schema_documents_both_endpoints(browser: httpx.AsyncClient) -> None:
    paths = (await browser.get("/api/openapi.json")).json()["paths"]
    authorize = paths["/api/v1/smtp-settings/oauth/authorize"]["post"]
    callback = paths["/api/v1/smtp-settings/oauth/callback"]["post"]
    assert "PKCE" in authorize["description"]
    assert "400" in callback["responses"]
    assert "requestBody" in callback


async def test_a_revoked_sign_in_offers_reconnect_on_the_page(
    browser: httpx.AsyncClient,
    connect_runtime: Runtime,
    org2: OrgFixture,
    provider: OAuthProvider,
    smtp: OAuthSmtpServer,
) -> None:
    await configure(browser, org2, smtp.port)
    await connect_by_api(browser, org2)
    await admin_csrf(browser, org2)
    page = (await browser.get("/settings/smtp")).text
    assert "oauth-reconnect" not in page

    provider.revoke_refresh_tokens()  # e.g. the user changed the password
    await drop_access_token(connect_runtime, org2)
    await enqueue(connect_runtime, org2, ["lead@example.org"])
    tokens = build_token_service(connect_runtime, policy=LOOPBACK)
    worker = make_worker(connect_runtime, org2, tokens=tokens, allow_plaintext_auth=True)

    async def paused() -> bool:
        async with connect_runtime.uow() as uow:
            health = await uow.health.get(org2.organization.id)
        return health is not None and health.paused

    try:
        await run_until(worker, paused)
        page = (await browser.get("/settings/smtp")).text
    finally:
        # The database is shared: a paused organization would be probed by other tests'
        # workers (the prober serves every organization), through their providers.
        await forget_health(connect_runtime, org2)
    assert 'id="oauth-reconnect"' in page
    assert "invalid_grant" in page
    assert "Reconnect Microsoft 365" in page


def page_form(csrf: str, **overrides: str) -> dict[str, str]:
    body = {
        "csrf_token": csrf,
        "host": "smtp.gmail.com",
        "port": "587",
        "security": "starttls",
        "username": MAILBOX,
        "sender_email": MAILBOX,
        "auth_method": "oauth2",
        "oauth.provider": "google_delegated",
        "oauth.client_id": G_CLIENT,
        "oauth.tenant_id": "left.over.example",  # from an earlier Microsoft choice: ignored
        "oauth.client_secret": G_SECRET,
        "oauth.include_imap": "on",
        "proxy.kind": "none",
        "limits.max_connections": "3",
        "limits.max_messages_per_connection": "100",
    }
    body.update(overrides)
    return body


async def test_the_page_form_saves_oauth2_with_the_client_secret_write_only(
    browser: httpx.AsyncClient, org2: OrgFixture
) -> None:
    csrf = await admin_csrf(browser, org2)
    saved = await browser.post("/settings/smtp", data=page_form(csrf))
    assert saved.status_code == 303, saved.text
    oauth = (await browser.get("/api/v1/smtp-settings", headers=org2.headers)).json()["oauth"]
    assert oauth["provider"] == "google_delegated"
    assert oauth["client_id"] == G_CLIENT
    assert oauth["tenant_id"] is None
    assert oauth["include_imap"] is True
    assert oauth["client_secret_set"] is True
    assert oauth["refresh_token_set"] is False
    page = (await browser.get("/settings/smtp")).text
    assert G_SECRET not in page
    assert "Connect Google" in page
    assert '<option value="google_delegated" selected>' in page
    assert "Google Cloud console" in page  # where the redirect URI goes

    bad = await browser.post(
        "/settings/smtp", data=page_form(csrf, **{"oauth.client_id": "has space"})
    )
    assert bad.status_code == 422
    assert 'href="#f-oauth-client-id">Client (application) id</a>' in bad.text
    assert G_SECRET not in bad.text


async def test_two_callbacks_with_one_state_at_once_connect_once(
    browser: httpx.AsyncClient, org2: OrgFixture, provider: OAuthProvider
) -> None:
    """A double-submitted callback: the row lock lets one consume the state; the other is
    told it was already used, and the code is exchanged once."""
    await configure(browser, org2)
    back = await consent(await click_connect(browser, await admin_csrf(browser, org2)))
    code = parse_qs(urlsplit(back).query)["code"][0]
    replies = await asyncio.gather(browser.get(local(back)), browser.get(local(back)))
    assert sorted(r.status_code for r in replies) == [303, 400]
    (refused,) = [r for r in replies if r.status_code == 400]
    assert "already used" in refused.text
    assert (
        len([r for r in provider.token_requests("authorization_code") if r.form["code"] == code])
        == 1
    )


async def test_a_callback_without_a_login_session_asks_to_log_in(
    browser: httpx.AsyncClient, org2: OrgFixture
) -> None:
    reply = await browser.get("/settings/smtp/oauth/callback?code=abc&state=def")
    assert reply.status_code == 401
    assert "login session ended" in reply.text
    assert 'href="/login"' in reply.text


async def test_only_the_mail_server_page_lets_forms_continue_to_the_sign_in_origins(
    browser: httpx.AsyncClient, org2: OrgFixture, provider: OAuthProvider
) -> None:
    await admin_csrf(browser, org2)
    csp = (await browser.get("/settings/smtp")).headers["content-security-policy"]
    assert f"form-action 'self' {provider.base_url};" in csp  # Microsoft and Google: one here
    other = (await browser.get("/")).headers["content-security-policy"]
    assert "form-action 'self';" in other


# --- the kinds that need no browser sign-in, set up by the page's form ----------------------


@pytest.mark.parametrize("kind", ["microsoft365_app", "google_service_account", "generic"])
async def test_each_kind_without_a_sign_in_is_set_up_by_form_and_its_test_passes(
    browser: httpx.AsyncClient,
    org2: OrgFixture,
    provider: OAuthProvider,
    smtp: OAuthSmtpServer,
    kind: str,
) -> None:
    """An admin with no JSON: the mail server page's form for app-only Microsoft 365, a
    Google service account and a generic token endpoint; the page's connection test then
    fetches a token from the (local) provider and logs in with XOAUTH2."""
    csrf = await admin_csrf(browser, org2)
    fields: dict[str, str] = {"oauth.provider": kind}
    secret: str
    if kind == "microsoft365_app":
        provider.register_client("ms-app-only", "App~Only~Secret~91")
        secret = "App~Only~Secret~91"
        fields |= {
            "oauth.tenant_id": TENANT,
            "oauth.client_id": "ms-app-only",
            "oauth.client_secret": secret,
        }
    elif kind == "google_service_account":
        secret = provider.register_service_account(
            "sender@proj.iam.gserviceaccount.com", KeyPair.generate()
        )
        fields |= {"oauth.client_id": "", "oauth.service_account_key": secret}
    else:
        provider.register_client("generic-form", "Generic~Form~Secret~92")
        secret = "Generic~Form~Secret~92"
        fields |= {
            "oauth.token_url": provider.google_url,
            "oauth.grant": "client_credentials",
            "oauth.scopes": SCOPE_GOOGLE_MAIL,
            "oauth.client_id": "generic-form",
            "oauth.client_secret": secret,
        }
    form = page_form(
        csrf,
        host="127.0.0.1",
        port=str(smtp.port),
        security="none",
        **{"oauth.client_secret": "", "oauth.include_imap": "", "oauth.tenant_id": ""},
    )
    form |= fields
    saved = await browser.post("/settings/smtp", data=form)
    assert saved.status_code == 303, saved.text
    oauth = (await browser.get("/api/v1/smtp-settings", headers=org2.headers)).json()["oauth"]
    assert oauth["provider"] == kind

    tested = await browser.post("/settings/smtp/test", data={**form, "oauth.client_secret": ""})
    assert tested.status_code == 200, tested.text
    report = tested.json()
    steps = {s["name"]: s["status"] for s in report["steps"]}
    assert (steps.get("token"), steps.get("scope"), steps.get("auth")) == (
        "passed",
        "passed",
        "passed",
    ), report
    page = (await browser.get("/settings/smtp")).text
    assert secret not in page and secret not in tested.text
