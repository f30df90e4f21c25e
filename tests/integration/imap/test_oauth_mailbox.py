"""The bounce mailbox signs in like an OAuth2 mail server does: the token service's access
token (Microsoft 365 delegated, with the IMAP scope) over XOAUTH2 to a real Dovecot, which
checks it at the test's token provider (RFC 7662 introspection), as Microsoft's and
Google's IMAP servers check theirs. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from tests.integration.imap.conftest import clock, poll_bounces
from tests.support.dovecot_server import DovecotServer, running_dovecot
from tests.support.oauth_provider import OAuthProvider, start_oauth_provider
from tests.support.orgs import OrgFixture
from tests.support.outbox import LOOPBACK
from visitmail.adapters.crypto.secret_box import SecretBox
from visitmail.adapters.oauth.client import HttpTokenClient
from visitmail.domain.bounce_mailbox import BounceMailbox
from visitmail.domain.oauth import OAuthEndpoints, OAuthSettings
from visitmail.domain.oauth import OAuthProvider as Kind
from visitmail.domain.smtp_settings import (
    AuthMethod,
    Security,
    SmtpSettings,
    Timeouts,
    TlsOptions,
)
from visitmail.runtime import Runtime
from visitmail.services import bounce_mailbox, smtp_config
from visitmail.services.oauth_tokens import TokenService
from visitmail.services.ports import SmtpSecretField

SAMPLES = Path(__file__).resolve().parents[2] / "unit" / "domain" / "reports_samples"
MAILBOX = "sales@contoso.example"
TENANT = "contoso.onmicrosoft.com"


@dataclass
class Servers:
    provider: OAuthProvider
    dovecot: DovecotServer


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    provider = start_oauth_provider()
    try:
        with running_dovecot(
            ca=trustme.CA(),
            users={MAILBOX: "no-password-sign-in-here"},
            introspection_url=f"{provider.base_url}/introspect",
        ) as dovecot:
            yield Servers(provider, dovecot)
    finally:
        provider.close()


def tokens(runtime: Runtime, provider: OAuthProvider) -> TokenService:
    return TokenService(
        runtime.uow,
        SecretBox(runtime.keyring),
        HttpTokenClient(LOOPBACK, timeout=10),
        OAuthEndpoints(microsoft_authority=provider.base_url, google_token_url=provider.google_url),
        clock=clock,
    )


async def set_up(runtime: Runtime, org: OrgFixture, servers: Servers) -> None:
    provider, dovecot = servers.provider, servers.dovecot
    provider.register_client("ms-app", "ms-secret")
    refresh = provider.issue_refresh_token("ms-app", MAILBOX)
    settings = SmtpSettings(
        host="127.0.0.1",
        port=2525,
        security=Security.STARTTLS,
        sender_email=MAILBOX,
        username=MAILBOX,
        auth_method=AuthMethod.OAUTH2,
        oauth=OAuthSettings(
            Kind.MICROSOFT365_DELEGATED, client_id="ms-app", tenant_id=TENANT, include_imap=True
        ),
        timeouts=Timeouts(connect=2, command=5, overall=10),
        tls=TlsOptions(ca_pem=dovecot.ca_pem),
    )
    async with runtime.uow() as uow:
        await smtp_config.put_settings(
            uow,
            SecretBox(runtime.keyring),
            org.principal,
            settings,
            {
                SmtpSecretField.OAUTH_CLIENT_SECRET: "ms-secret",
                SmtpSecretField.OAUTH_REFRESH_TOKEN: refresh,
            },
            policy=LOOPBACK,
        )
    async with runtime.uow() as uow:
        await bounce_mailbox.put_mailbox(
            uow,
            SecretBox(runtime.keyring),
            org.principal,
            BounceMailbox(host=dovecot.host, port=dovecot.tls_port),  # sign in like SMTP
            password=None,
            now=clock(),
        )


async def test_the_mailbox_signs_in_with_the_mail_servers_oauth_token(
    runtime: Runtime, org: OrgFixture, servers: Servers
) -> None:
    await set_up(runtime, org, servers)
    servers.dovecot.deliver(MAILBOX, (SAMPLES / "exchange_online_ndr.eml").read_bytes())

    polled = await poll_bounces(runtime, org, tokens=tokens(runtime, servers.provider))

    assert polled is not None and polled.error is None, polled
    assert polled.reports >= 1  # read over XOAUTH2; the NDR is not ours, so nothing applies
    assert servers.provider.token_requests("refresh_token")
    servers.dovecot.empty(MAILBOX)


async def test_a_token_revoked_at_the_provider_is_refreshed_once(
    runtime: Runtime, org: OrgFixture, servers: Servers
) -> None:
    await set_up(runtime, org, servers)
    service = tokens(runtime, servers.provider)
    await service.access_token(org.organization.id, MAILBOX)  # cached in the database
    servers.provider.revoke_access_tokens()  # e.g. after the mailbox's password changed
    before = len(servers.provider.token_requests("refresh_token"))

    polled = await poll_bounces(runtime, org, tokens=service)

    assert polled is not None and polled.error is None, polled
    assert len(servers.provider.token_requests("refresh_token")) == before + 1


async def test_a_sign_in_the_provider_no_longer_honours_says_to_reconnect(
    runtime: Runtime, org: OrgFixture, servers: Servers
) -> None:
    await set_up(runtime, org, servers)
    service = tokens(runtime, servers.provider)
    await service.access_token(org.organization.id, MAILBOX)
    servers.provider.revoke_access_tokens()
    servers.provider.revoke_refresh_tokens()

    polled = await poll_bounces(runtime, org, tokens=service)

    assert polled is not None and polled.error is not None
    assert "Reconnect the account" in polled.error
