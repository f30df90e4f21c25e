"""OAuth2 sending end to end, on SQLite and PostgreSQL: a real token endpoint on loopback
(tests/support/oauth_provider.py) and a real aiosmtpd server that checks the XOAUTH2
bearer token against it. Nothing here reaches the internet."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.oauth_provider import KeyPair, OAuthProvider, start_oauth_provider
from tests.support.oauth_smtp import OAuthSmtpServer, start_oauth_smtp_server
from tests.support.orgs import OrgFixture
from tests.support.outbox import LOOPBACK, ManualClock, enqueue, make_worker, run_until
from visitmail.adapters.crypto.secret_box import SecretBox
from visitmail.adapters.oauth.client import HttpTokenClient
from visitmail.domain.network_policy import NetworkPolicy
from visitmail.domain.oauth import (
    SCOPE_GOOGLE_MAIL,
    SCOPE_MS_APP,
    SCOPE_MS_SMTP,
    GenericGrant,
    OAuthEndpoints,
    OAuthSettings,
)
from visitmail.domain.oauth import OAuthProvider as Kind
from visitmail.domain.oauth_tokens import OAuthTokenFailed
from visitmail.domain.outbox import MessageStatus
from visitmail.domain.smtp_settings import (
    AuthMethod,
    Limits,
    Security,
    SmtpSettings,
    Timeouts,
)
from visitmail.runtime import Runtime
from visitmail.services import outbox, smtp_config
from visitmail.services.clock import Clock, utcnow
from visitmail.services.oauth_tokens import TokenService
from visitmail.services.ports import SmtpSecretField

MAILBOX = "sales@example.com"
TENANT = "contoso.onmicrosoft.com"


@pytest.fixture
def provider() -> Iterator[OAuthProvider]:
    p = start_oauth_provider()
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
async def servers() -> AsyncIterator[list[OAuthSmtpServer]]:
    started: list[OAuthSmtpServer] = []
    yield started
    for server in started:
        await server.close()


def endpoints(provider: OAuthProvider) -> OAuthEndpoints:
    return OAuthEndpoints(
        microsoft_authority=provider.base_url, google_token_url=provider.google_url
    )


def token_service(runtime: Runtime, provider: OAuthProvider, clock: Clock = utcnow) -> TokenService:
    return TokenService(
        runtime.uow,
        SecretBox(runtime.keyring),
        HttpTokenClient(LOOPBACK, timeout=10),
        endpoints(provider),
        clock=clock,
    )


async def configure_oauth(
    runtime: Runtime,
    org: OrgFixture,
    port: int,
    oauth: OAuthSettings,
    secrets: dict[SmtpSecretField, str | None],
    *,
    limits: Limits | None = None,
) -> None:
    settings = SmtpSettings(
        host="127.0.0.1",
        port=port,
        security=Security.NONE,
        sender_email=MAILBOX,
        username=MAILBOX,
        auth_method=AuthMethod.OAUTH2,
        oauth=oauth,
        timeouts=Timeouts(connect=2, command=5, overall=10),
        limits=limits or Limits(max_connections=1, max_messages_per_connection=50),
    )
    async with runtime.uow() as uow:
        await smtp_config.put_settings(
            uow,
            SecretBox(runtime.keyring),
            org.principal,
            settings,
            secrets,
            allow_plaintext_auth=True,
            policy=LOOPBACK,
        )


async def status_of(runtime: Runtime, org: OrgFixture, pk):  # type: ignore[no-untyped-def]
    async with runtime.uow() as uow:
        return (await outbox.get_message(uow, org.principal, pk)).status


async def stored_refresh_token(runtime: Runtime, org: OrgFixture) -> str | None:
    async with runtime.uow() as uow:
        stored = await uow.oauth_tokens.get(org.organization.id)
    assert stored is not None
    sealed = stored.sealed.get(SmtpSecretField.OAUTH_REFRESH_TOKEN)
    if sealed is None:
        return None
    return SecretBox(runtime.keyring).open(
        sealed,
        organization_id=org.organization.id,
        field=SmtpSecretField.OAUTH_REFRESH_TOKEN.sealed_as,
    )


@dataclass
class Setup:
    oauth: OAuthSettings
    secrets: dict[SmtpSecretField, str | None]
    grant_type: str


def setup_kind(provider: OAuthProvider, kind: Kind) -> Setup:
    if kind is Kind.MICROSOFT365_DELEGATED:
        provider.register_client("ms-app", "ms-secret")
        rt = provider.issue_refresh_token("ms-app", MAILBOX)
        return Setup(
            OAuthSettings(kind, client_id="ms-app", tenant_id=TENANT),
            {
                SmtpSecretField.OAUTH_CLIENT_SECRET: "ms-secret",
                SmtpSecretField.OAUTH_REFRESH_TOKEN: rt,
            },
            "refresh_token",
        )
    if kind is Kind.MICROSOFT365_APP:
        keys = KeyPair.generate()
        provider.register_certificate("ms-daemon", keys)
        return Setup(
            OAuthSettings(
                kind, client_id="ms-daemon", tenant_id=TENANT, client_cert_pem=keys.cert_pem
            ),
            {SmtpSecretField.OAUTH_PRIVATE_KEY: keys.private_pem},
            "client_credentials",
        )
    if kind is Kind.GOOGLE_DELEGATED:
        provider.register_client("g-client", "g-secret")
        rt = provider.issue_refresh_token("g-client", MAILBOX, (SCOPE_GOOGLE_MAIL,))
        return Setup(
            OAuthSettings(kind, client_id="g-client"),
            {
                SmtpSecretField.OAUTH_CLIENT_SECRET: "g-secret",
                SmtpSecretField.OAUTH_REFRESH_TOKEN: rt,
            },
            "refresh_token",
        )
    if kind is Kind.GOOGLE_SERVICE_ACCOUNT:
        key_file = provider.register_service_account(
            "sender@project.iam.gserviceaccount.com", KeyPair.generate()
        )
        return Setup(
            OAuthSettings(kind),
            {SmtpSecretField.OAUTH_SERVICE_ACCOUNT_KEY: key_file},
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
        )
    provider.register_client("generic-client", "generic-secret")
    return Setup(
        OAuthSettings(
            kind,
            client_id="generic-client",
            token_url=f"{provider.base_url}/oauth/token",
            scopes=("smtp.send",),
            grant=GenericGrant.CLIENT_CREDENTIALS,
        ),
        {SmtpSecretField.OAUTH_CLIENT_SECRET: "generic-secret"},
        "client_credentials",
    )


@pytest.mark.parametrize("kind", list(Kind))
async def test_a_message_goes_out_through_each_provider_kind(
    runtime: Runtime,
    org: OrgFixture,
    provider: OAuthProvider,
    servers: list[OAuthSmtpServer],
    kind: Kind,
) -> None:
    server = await start_oauth_smtp_server(
        provider, style="google" if kind.value.startswith("google") else "microsoft"
    )
    servers.append(server)
    setup = setup_kind(provider, kind)
    await configure_oauth(runtime, org, server.port, setup.oauth, setup.secrets)
    pk, message_id = await enqueue(runtime, org, ["lead@example.org"])

    worker = make_worker(
        runtime, org, tokens=token_service(runtime, provider), allow_plaintext_auth=True
    )
    await worker.run_until_idle()

    assert await status_of(runtime, org, pk) is MessageStatus.SENT
    assert server.log.attempts == [(MAILBOX, True)]
    (received,) = server.recorder.messages
    assert received.parsed()["Message-ID"] == message_id
    (request,) = provider.token_requests()
    assert request.grant_type == setup.grant_type
    if kind is Kind.MICROSOFT365_DELEGATED:
        assert request.path == f"/{TENANT}/oauth2/v2.0/token"
        assert request.form["scope"].split() == [SCOPE_MS_SMTP, "offline_access"]
    if kind is Kind.MICROSOFT365_APP:
        assert request.form["scope"] == SCOPE_MS_APP
        assert "client_secret" not in request.form  # the certificate's assertion instead
    if kind is Kind.GOOGLE_SERVICE_ACCOUNT:
        payload = request.form["assertion"].split(".")[1]
        claims = json.loads(
            __import__("base64").urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        )
        assert claims["sub"] == MAILBOX


async def test_the_token_is_reused_then_refreshed_under_five_minutes_and_rotation_is_saved(
    runtime: Runtime, org: OrgFixture, provider: OAuthProvider, servers: list[OAuthSmtpServer]
) -> None:
    server = await start_oauth_smtp_server(provider)
    servers.append(server)
    setup = setup_kind(provider, Kind.MICROSOFT365_DELEGATED)
    first_refresh_token = setup.secrets[SmtpSecretField.OAUTH_REFRESH_TOKEN]
    await configure_oauth(runtime, org, server.port, setup.oauth, setup.secrets)
    clock = ManualClock(datetime.now(UTC))
    tokens = token_service(runtime, provider, clock)

    async def send_one() -> None:
        pk, _ = await enqueue(runtime, org, ["lead@example.org"], clock=clock)
        # a new worker per message: a new physical connection, so a token is asked for
        await make_worker(
            runtime, org, tokens=tokens, allow_plaintext_auth=True, clock=clock
        ).run_until_idle()
        assert await status_of(runtime, org, pk) is MessageStatus.SENT

    await send_one()
    assert len(provider.token_requests()) == 1
    rotated = await stored_refresh_token(runtime, org)
    assert rotated is not None and rotated != first_refresh_token
    assert rotated in provider.refresh_tokens  # the provider's current one was saved

    clock.advance(timedelta(minutes=50))  # 10 minutes left: the cached token is used
    await send_one()
    assert len(provider.token_requests()) == 1

    clock.advance(timedelta(minutes=6))  # 4 minutes left: refreshed before connecting
    await send_one()
    requests = provider.token_requests()
    assert len(requests) == 2
    assert requests[1].form["refresh_token"] == rotated  # the rotated one was used
    assert await stored_refresh_token(runtime, org) not in (rotated, first_refresh_token)
    # the first refresh token was spent: the provider refuses it now
    status, body = provider.answer(
        f"/{TENANT}/oauth2/v2.0/token",
        {
            "grant_type": "refresh_token",
            "client_id": "ms-app",
            "client_secret": "ms-secret",
            "refresh_token": str(first_refresh_token),
        },
    )
    assert (status, body["error"]) == (400, "invalid_grant")
    assert [ok for _, ok in server.log.attempts] == [True, True, True]


async def test_two_workers_refreshing_at_once_make_one_request(
    runtime: Runtime, org: OrgFixture, provider: OAuthProvider
) -> None:
    setup = setup_kind(provider, Kind.MICROSOFT365_DELEGATED)
    await configure_oauth(runtime, org, 2525, setup.oauth, setup.secrets)
    provider.delay = 0.3  # the first refresh is still in flight when the second one asks
    # two services: two workers, each with its own in-process lock; only the row lock
    # (PostgreSQL) or the single writer (SQLite) keeps them apart
    first, second = token_service(runtime, provider), token_service(runtime, provider)

    a, b = await asyncio.gather(
        first.access_token(org.organization.id, MAILBOX),
        second.access_token(org.organization.id, MAILBOX),
    )

    assert len(provider.token_requests("refresh_token")) == 1
    assert a.token == b.token
    assert first.counters.refreshes + second.counters.refreshes == 1
    assert await stored_refresh_token(runtime, org) in provider.refresh_tokens


async def test_a_535_after_the_token_forces_one_refresh_and_one_retry(
    runtime: Runtime,
    org: OrgFixture,
    provider: OAuthProvider,
    servers: list[OAuthSmtpServer],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    server = await start_oauth_smtp_server(provider)
    servers.append(server)
    setup = setup_kind(provider, Kind.MICROSOFT365_DELEGATED)
    await configure_oauth(runtime, org, server.port, setup.oauth, setup.secrets)
    tokens = token_service(runtime, provider)
    await tokens.access_token(org.organization.id, MAILBOX)  # cached, an hour left
    provider.revoke_access_tokens()  # ... but the server no longer takes it
    pk, _ = await enqueue(runtime, org, ["lead@example.org"])

    await make_worker(runtime, org, tokens=tokens, allow_plaintext_auth=True).run_until_idle()

    assert await status_of(runtime, org, pk) is MessageStatus.SENT
    assert server.log.attempts == [(MAILBOX, False), (MAILBOX, True)]
    assert len(provider.token_requests()) == 2  # the first fetch and the forced refresh
    # no secret in any log line: client secret, refresh tokens (old and rotated), tokens
    out = capsys.readouterr()
    logged = caplog.text + out.out + out.err
    secrets = ["ms-secret", *server.log.tokens, *provider.refresh_tokens]
    secrets += [r.form["refresh_token"] for r in provider.token_requests()]
    for secret in secrets:
        assert secret not in logged


async def test_a_revoked_grant_pauses_the_queue_with_the_reconnect_advice(
    runtime: Runtime, org: OrgFixture, provider: OAuthProvider, servers: list[OAuthSmtpServer]
) -> None:
    server = await start_oauth_smtp_server(provider, style="google")
    servers.append(server)
    setup = setup_kind(provider, Kind.GOOGLE_DELEGATED)
    await configure_oauth(runtime, org, server.port, setup.oauth, setup.secrets)
    provider.revoke_refresh_tokens()
    await enqueue(runtime, org, ["lead@example.org"])
    worker = make_worker(
        runtime, org, tokens=token_service(runtime, provider), allow_plaintext_auth=True
    )

    async def paused() -> bool:
        async with runtime.uow() as uow:
            health = await uow.health.get(org.organization.id)
        return health is not None and health.paused

    await run_until(worker, paused)

    async with runtime.uow() as uow:
        health = await uow.health.get(org.organization.id)
    assert health is not None and health.paused_reason is not None
    assert "Token has been expired or revoked" in health.paused_reason
    assert "Reconnect the account" in health.paused_reason
    assert server.recorder.commands.count("AUTH") == 0  # no token, so no login attempt
    # Only a person can repair a revoked sign-in: the queue pauses at the first failure,
    # not after the worker's three failures in a row (make_worker's pause_after).
    assert health.consecutive_failures == 1
    assert health.paused_reason.startswith("paused after 1 failed connections in a row")


async def test_google_challenge_and_a_refused_fresh_token_count_as_auth_failure(
    runtime: Runtime, org: OrgFixture, provider: OAuthProvider, servers: list[OAuthSmtpServer]
) -> None:
    # The server refuses every token for the mailbox (e.g. SMTP AUTH disabled): one forced
    # refresh, one retry, then an authentication failure with the server's reply.
    server = await start_oauth_smtp_server(
        provider,
        refuse=lambda _m: (
            "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication "
            "is disabled for the Tenant."
        ),
    )
    servers.append(server)
    setup = setup_kind(provider, Kind.MICROSOFT365_DELEGATED)
    await configure_oauth(runtime, org, server.port, setup.oauth, setup.secrets)
    tokens = token_service(runtime, provider)
    sender_probe = make_worker(runtime, org, tokens=tokens, allow_plaintext_auth=True)
    reason = await sender_probe.smtp.probe(org.organization.id)
    await sender_probe.smtp.close()

    assert reason is not None
    assert reason.startswith("auth:")
    assert "freshly fetched token was refused too" in reason
    assert server.log.attempts == [(MAILBOX, False), (MAILBOX, False)]
    assert len(provider.token_requests()) == 2


async def test_token_errors_name_the_fix(
    runtime: Runtime, org: OrgFixture, provider: OAuthProvider
) -> None:
    provider.register_client("ms-app", "the-real-secret")
    rt = provider.issue_refresh_token("ms-app", MAILBOX)
    await configure_oauth(
        runtime,
        org,
        2525,
        OAuthSettings(Kind.MICROSOFT365_DELEGATED, client_id="ms-app", tenant_id=TENANT),
        {
            SmtpSecretField.OAUTH_CLIENT_SECRET: "an-old-secret",
            SmtpSecretField.OAUTH_REFRESH_TOKEN: rt,
        },
    )
    with pytest.raises(OAuthTokenFailed) as wrong_secret:
        await token_service(runtime, provider).access_token(org.organization.id, MAILBOX)
    assert "AADSTS7000215" in wrong_secret.value.message
    assert "Enter the current client secret" in wrong_secret.value.fix
    assert "an-old-secret" not in wrong_secret.value.message
    assert await stored_refresh_token(runtime, org) == rt  # nothing was spent or lost

    provider.register_client("ms-app", "an-old-secret")
    provider.revoke_refresh_tokens()
    with pytest.raises(OAuthTokenFailed) as expired:
        await token_service(runtime, provider).access_token(org.organization.id, MAILBOX)
    assert "AADSTS700082" in expired.value.message
    assert expired.value.fix.startswith("Reconnect the account")


async def test_the_token_endpoint_must_pass_the_network_guard(
    runtime: Runtime, org: OrgFixture, provider: OAuthProvider
) -> None:
    setup = setup_kind(provider, Kind.MICROSOFT365_DELEGATED)
    await configure_oauth(runtime, org, 2525, setup.oauth, setup.secrets)
    guarded = TokenService(
        runtime.uow,
        SecretBox(runtime.keyring),
        HttpTokenClient(NetworkPolicy()),  # the operator allows no private network
        endpoints(provider),
    )

    with pytest.raises(OAuthTokenFailed) as refused:
        await guarded.access_token(org.organization.id, MAILBOX)

    assert "VISITMAIL_SMTP_ALLOWED_NETWORKS" in refused.value.message
    assert provider.token_requests() == []  # nothing was sent
    assert (
        await stored_refresh_token(runtime, org)
        == setup.secrets[SmtpSecretField.OAUTH_REFRESH_TOKEN]
    )
