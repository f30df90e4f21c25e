"""The connection test with OAuth2: the ``token`` and ``scope`` steps before ``auth``,
against the loopback token endpoint and the XOAUTH2 aiosmtpd server, on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.integration.outbox.test_oauth_delivery import (
    MAILBOX,
    TENANT,
    configure_oauth,
    setup_kind,
    token_service,
)
from tests.support.oauth_provider import OAuthProvider, start_oauth_provider
from tests.support.oauth_smtp import OAuthSmtpServer, start_oauth_smtp_server
from tests.support.orgs import OrgFixture
from tests.support.outbox import LOOPBACK
from visitmail.adapters.crypto.secret_box import SecretBox
from visitmail.adapters.smtp.diagnosis import SmtpConnectionTester
from visitmail.domain.diagnosis import DiagnosisReport, Step, StepName, StepStatus
from visitmail.domain.oauth import GenericGrant, OAuthSettings
from visitmail.domain.oauth import OAuthProvider as Kind
from visitmail.domain.smtp_settings import AuthMethod, Security, SmtpSettings, Timeouts
from visitmail.runtime import Runtime
from visitmail.services import smtp_config
from visitmail.services.ports import SmtpSecretField


@pytest.fixture
def provider() -> Iterator[OAuthProvider]:
    p = start_oauth_provider()
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
async def server(provider: OAuthProvider) -> AsyncIterator[OAuthSmtpServer]:
    s = await start_oauth_smtp_server(provider)
    yield s
    await s.close()


def step(report: DiagnosisReport, name: StepName) -> Step:
    return next(s for s in report.steps if s.name is name)


async def run_test(
    runtime: Runtime, org: OrgFixture, provider: OAuthProvider, **kwargs: object
) -> DiagnosisReport:
    async with runtime.uow() as uow:
        return await smtp_config.diagnose_settings(
            uow,
            SecretBox(runtime.keyring),
            SmtpConnectionTester(LOOPBACK, allow_plaintext_auth=True),
            org.principal,
            tokens=token_service(runtime, provider),
            policy=LOOPBACK,
            **kwargs,  # type: ignore[arg-type]
        )


async def test_token_and_scope_pass_before_the_xoauth2_login(
    runtime: Runtime, org: OrgFixture, provider: OAuthProvider, server: OAuthSmtpServer
) -> None:
    setup = setup_kind(provider, Kind.MICROSOFT365_DELEGATED)
    await configure_oauth(runtime, org, server.port, setup.oauth, setup.secrets)

    report = await run_test(runtime, org, provider)

    assert report.ok, report
    names = [s.name for s in report.steps]
    assert names.index(StepName.TOKEN) < names.index(StepName.SCOPE) < names.index(StepName.AUTH)
    token = step(report, StepName.TOKEN)
    assert token.status is StepStatus.PASSED
    assert "expires at" in (token.explanation or "")
    assert "expires_at" in token.details
    scope = step(report, StepName.SCOPE)
    assert scope.status is StepStatus.PASSED
    assert "https://outlook.office.com/SMTP.Send" in (scope.explanation or "")
    assert step(report, StepName.AUTH).details["mechanism"] == "XOAUTH2"
    assert server.log.attempts == [(MAILBOX, True)]
    text = repr(report)
    for secret in [*provider.refresh_tokens, *provider.access_tokens, "ms-secret"]:
        assert secret not in text


async def test_a_token_without_the_smtp_scope_fails_at_scope_naming_it(
    runtime: Runtime, org: OrgFixture, provider: OAuthProvider, server: OAuthSmtpServer
) -> None:
    setup = setup_kind(provider, Kind.MICROSOFT365_DELEGATED)
    await configure_oauth(runtime, org, server.port, setup.oauth, setup.secrets)
    provider.granted_scopes = ("https://graph.microsoft.com/User.Read", "offline_access")

    report = await run_test(runtime, org, provider)

    assert not report.ok
    failed = report.failed_step
    assert failed is not None and failed.name is StepName.SCOPE
    assert failed.details["missing"] == ["https://outlook.office.com/SMTP.Send"]
    assert "SMTP.Send" in (failed.fix or "")
    assert step(report, StepName.AUTH).status is StepStatus.SKIPPED
    assert server.recorder.commands.count("AUTH") == 0


async def test_a_revoked_refresh_token_fails_at_token_with_the_reconnect_fix(
    runtime: Runtime, org: OrgFixture, provider: OAuthProvider, server: OAuthSmtpServer
) -> None:
    setup = setup_kind(provider, Kind.MICROSOFT365_DELEGATED)
    await configure_oauth(runtime, org, server.port, setup.oauth, setup.secrets)
    provider.revoke_refresh_tokens()

    report = await run_test(runtime, org, provider)

    failed = report.failed_step
    assert failed is not None and failed.name is StepName.TOKEN
    assert "AADSTS700082" in (failed.explanation or "")
    assert (failed.fix or "").startswith("Reconnect the account")
    assert step(report, StepName.SCOPE).status is StepStatus.SKIPPED
    assert step(report, StepName.AUTH).status is StepStatus.SKIPPED


async def test_inline_settings_fetch_directly_and_store_nothing(
    runtime: Runtime, org: OrgFixture, provider: OAuthProvider, server: OAuthSmtpServer
) -> None:
    provider.register_client("generic-client", "generic-secret")
    inline = SmtpSettings(
        host="127.0.0.1",
        port=server.port,
        security=Security.NONE,
        sender_email=MAILBOX,
        username=MAILBOX,
        auth_method=AuthMethod.OAUTH2,
        oauth=OAuthSettings(
            Kind.GENERIC,
            client_id="generic-client",
            token_url=f"{provider.base_url}/oauth/token",
            scopes=("smtp.send",),
            grant=GenericGrant.CLIENT_CREDENTIALS,
        ),
        timeouts=Timeouts(connect=2, command=5, overall=10),
    )

    report = await run_test(
        runtime,
        org,
        provider,
        inline=inline,
        inline_secrets={SmtpSecretField.OAUTH_CLIENT_SECRET: "generic-secret"},
    )

    assert report.ok, report
    assert step(report, StepName.TOKEN).status is StepStatus.PASSED
    assert "fetched from" in (step(report, StepName.TOKEN).explanation or "")
    async with runtime.uow() as uow:
        assert await uow.oauth_tokens.get(org.organization.id) is None  # nothing saved


def test_the_microsoft_token_url_comes_from_the_tenant() -> None:
    from visitmail.domain.oauth import OAuthEndpoints, token_url

    settings = OAuthSettings(Kind.MICROSOFT365_APP, client_id="c", tenant_id=TENANT)
    assert token_url(settings, OAuthEndpoints()) == (
        f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"
    )
    assert token_url(settings, OAuthEndpoints(microsoft_authority="http://127.0.0.1:9/")) == (
        f"http://127.0.0.1:9/{TENANT}/oauth2/v2.0/token"
    )


async def test_auto_detect_with_oauth2_leaves_the_login_to_the_connection_test(
    runtime: Runtime, org: OrgFixture, provider: OAuthProvider, server: OAuthSmtpServer
) -> None:
    setup = setup_kind(provider, Kind.MICROSOFT365_DELEGATED)
    await configure_oauth(runtime, org, server.port, setup.oauth, setup.secrets)

    async with runtime.uow() as uow:
        found = await smtp_config.autodetect(
            uow,
            SecretBox(runtime.keyring),
            SmtpConnectionTester(LOOPBACK, allow_plaintext_auth=True, autodetect_timeout=2),
            org.principal,
        )

    plain = next(c for c in found.candidates if c.port == server.port and c.security == "none")
    assert plain.ok, plain
    assert provider.token_requests() == []  # no token spent by auto-detect
    assert server.recorder.commands.count("AUTH") == 0


async def test_microsoft_refusing_a_valid_token_is_explained_with_the_mailbox_switch(
    runtime: Runtime, org: OrgFixture, provider: OAuthProvider
) -> None:
    """A good token, but SMTP AUTH is off for the mailbox: the one reply explainer names
    the switch to turn on (not a generic "token refused")."""
    refusing = await start_oauth_smtp_server(
        provider,
        refuse=lambda _m: (
            "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled "
            "for the Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information."
        ),
    )
    try:
        setup = setup_kind(provider, Kind.MICROSOFT365_DELEGATED)
        await configure_oauth(runtime, org, refusing.port, setup.oauth, setup.secrets)
        report = await run_test(runtime, org, provider)
    finally:
        await refusing.close()

    assert not report.ok
    assert step(report, StepName.TOKEN).status is StepStatus.PASSED
    auth = step(report, StepName.AUTH)
    assert auth.status is StepStatus.FAILED
    assert "Set-TransportConfig -SmtpClientAuthenticationDisabled $false" in (auth.fix or "")
    assert auth.reply_code == 535
