"""``visitmail smtp test`` and ``visitmail keys rotate`` with OAuth2, as an operator runs them:
real subprocesses, the Microsoft endpoint pointed at the loopback test provider through
``VISITMAIL_OAUTH_MICROSOFT_AUTHORITY``."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.integration.cli.test_smtp_cli import Site, cli, site  # noqa: F401 (fixture)
from tests.support.oauth_provider import OAuthProvider, start_oauth_provider
from tests.support.oauth_smtp import start_oauth_smtp_server
from tests.support.outbox import LOOPBACK
from visitmail.adapters.crypto.secret_box import SecretBox
from visitmail.domain.identity import Principal
from visitmail.domain.oauth import OAuthProvider as Kind
from visitmail.domain.oauth import OAuthSettings
from visitmail.domain.smtp_settings import AuthMethod, Security, SmtpSettings, Timeouts
from visitmail.services import smtp_config
from visitmail.services.ports import SmtpSecretField

MAILBOX = "sales@example.com"
CLIENT_SECRET = "cli-client-secret-value"


@pytest.fixture
def provider() -> Iterator[OAuthProvider]:
    p = start_oauth_provider()
    try:
        yield p
    finally:
        p.close()


async def save_oauth(where: Site, port: int, refresh_token: str) -> None:
    runtime = where.runtime()
    try:
        async with runtime.uow() as uow:
            found = await uow.users.find_for_login(where.admin_email)
            assert found
            await smtp_config.put_settings(
                uow,
                SecretBox(runtime.keyring),
                Principal(user=found[0], via="token"),
                SmtpSettings(
                    host="127.0.0.1",
                    port=port,
                    security=Security.NONE,
                    sender_email=MAILBOX,
                    username=MAILBOX,
                    auth_method=AuthMethod.OAUTH2,
                    oauth=OAuthSettings(
                        Kind.MICROSOFT365_DELEGATED, client_id="cli-app", tenant_id="contoso"
                    ),
                    timeouts=Timeouts(connect=2, command=5, overall=10),
                ),
                {
                    SmtpSecretField.OAUTH_CLIENT_SECRET: CLIENT_SECRET,
                    SmtpSecretField.OAUTH_REFRESH_TOKEN: refresh_token,
                },
                allow_plaintext_auth=True,
                policy=LOOPBACK,
            )
    finally:
        await runtime.close()


async def test_smtp_test_reports_token_and_scope_then_keys_rotate_reseals_them(
    site: Site,  # noqa: F811
    provider: OAuthProvider,
) -> None:
    provider.register_client("cli-app", CLIENT_SECRET)
    refresh_token = provider.issue_refresh_token("cli-app", MAILBOX)
    server = await start_oauth_smtp_server(provider)
    try:
        await save_oauth(site, server.port, refresh_token)
        env = {
            **site.env,
            "VISITMAIL_SMTP_ALLOWED_NETWORKS": "127.0.0.0/8",
            "VISITMAIL_ALLOW_PLAINTEXT_AUTH": "true",
            "VISITMAIL_OAUTH_MICROSOFT_AUTHORITY": provider.base_url,
        }
        reply = await cli(["smtp", "test", "--org", str(site.org_id), "--json"], env, site.tmp)
        assert reply.returncode == 0, reply.stdout + reply.stderr
        report = json.loads(reply.stdout)
        steps = {s["name"]: s for s in report["steps"]}
        assert steps["token"]["status"] == "passed"
        assert steps["scope"]["status"] == "passed"
        assert steps["auth"]["details"]["mechanism"] == "XOAUTH2"
        assert server.log.attempts == [(MAILBOX, True)]
        (request,) = provider.token_requests()
        assert request.path == "/contoso/oauth2/v2.0/token"

        rotated = await cli(["keys", "rotate"], env, site.tmp)
        assert rotated.returncode == 0, rotated.stderr
        # client secret, the rotated refresh token and the cached access token
        assert "re-encrypted: 3" in rotated.stdout
        for output in (reply.stdout, reply.stderr, rotated.stdout, rotated.stderr):
            assert CLIENT_SECRET not in output
            for token in [refresh_token, *provider.refresh_tokens, *provider.access_tokens]:
                assert token not in output
    finally:
        await server.close()
