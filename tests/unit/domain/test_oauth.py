"""domain/oauth.py: validation naming the field, token URLs under the network policy, the
scopes SMTP needs, token errors in plain words, XOAUTH2's string, values that never print
a secret."""

from __future__ import annotations

import base64
import ipaddress
from datetime import UTC, datetime, timedelta

import pytest

from visitmail.domain.errors import InvalidInput
from visitmail.domain.network_policy import NetworkPolicy
from visitmail.domain.oauth import (
    SCOPE_MS_IMAP,
    SCOPE_MS_SMTP,
    OAuthProvider,
    OAuthSettings,
    check_token_url,
    missing_scopes,
    requested_scopes,
    validate_oauth,
)
from visitmail.domain.oauth_tokens import (
    AccessToken,
    OAuthCredentials,
    TokenGrant,
    explain_token_error,
    xoauth2_initial_response,
)

PUBLIC = NetworkPolicy()
LOOPBACK = NetworkPolicy((ipaddress.ip_network("127.0.0.0/8"),))


@pytest.mark.parametrize(
    ("url", "policy", "ok"),
    [
        ("https://login.example.com/oauth2/token", PUBLIC, True),
        ("http://login.example.com/oauth2/token", PUBLIC, False),  # plain http off loopback
        ("http://127.0.0.1:8080/token", PUBLIC, False),  # loopback not allowed
        ("http://127.0.0.1:8080/token", LOOPBACK, True),
        ("https://169.254.169.254/token", PUBLIC, False),  # metadata address
        ("https://10.0.0.5/token", LOOPBACK, False),
        ("ftp://login.example.com/token", PUBLIC, False),
        ("https://user:pw@login.example.com/token", PUBLIC, False),
        ("https://login.example.com/token#frag", PUBLIC, False),
        ("https://login.exämple.com/token", PUBLIC, False),
    ],
)
def test_token_urls_follow_the_network_policy(url: str, policy: NetworkPolicy, ok: bool) -> None:
    if ok:
        assert check_token_url(url, policy, field_name="oauth.token_url") == url
    else:
        with pytest.raises(InvalidInput) as err:
            check_token_url(url, policy, field_name="oauth.token_url")
        assert err.value.field == "oauth.token_url"


def test_microsoft_delegated_defaults_and_imap_scope() -> None:
    settings = validate_oauth(
        OAuthSettings(
            OAuthProvider.MICROSOFT365_DELEGATED,
            client_id=" app ",
            tenant_id="contoso.onmicrosoft.com",
            include_imap=True,
        ),
        PUBLIC,
    )
    assert settings.client_id == "app"
    assert requested_scopes(settings) == (SCOPE_MS_SMTP, "offline_access", SCOPE_MS_IMAP)
    assert settings.uses_refresh_token


def test_missing_scopes_accept_microsofts_short_names() -> None:
    settings = OAuthSettings(OAuthProvider.MICROSOFT365_DELEGATED, client_id="a", tenant_id="t")
    assert missing_scopes(settings, ("SMTP.Send", "offline_access")) == []
    assert missing_scopes(settings, ("User.Read",)) == [SCOPE_MS_SMTP]


@pytest.mark.parametrize(
    ("text", "error", "status", "needle", "reconnect"),
    [
        ("AADSTS700082: The refresh token has expired", "invalid_grant", 400, "Reconnect", True),
        ("AADSTS50173: The provided grant has expired", "invalid_grant", 400, "Reconnect", True),
        ("Token has been expired or revoked.", "invalid_grant", 400, "Reconnect", True),
        (
            "AADSTS7000215: Invalid client secret provided.",
            "invalid_client",
            401,
            "current client secret",
            True,
        ),
        ("upstream down", None, 503, "tries again later", False),
    ],
)
def test_token_errors_say_what_to_do(
    text: str, error: str | None, status: int, needle: str, reconnect: bool
) -> None:
    failure = explain_token_error(OAuthProvider.MICROSOFT365_DELEGATED, status, error, text)
    assert needle in failure.fix
    assert failure.reconnect is reconnect
    assert failure.field == "oauth"


def test_xoauth2_initial_response() -> None:
    raw = base64.b64decode(xoauth2_initial_response("a@example.com", "tok"))
    assert raw == b"user=a@example.com\x01auth=Bearer tok\x01\x01"


def test_values_holding_secrets_never_print_them() -> None:
    now = datetime.now(UTC)
    token = AccessToken("at-secret-value", now + timedelta(hours=1))
    grant = TokenGrant("at-secret-value", 3600, refresh_token="rt-secret-value")
    creds = OAuthCredentials(client_secret="cs-secret-value", refresh_token="rt-secret-value")
    for value in (token, grant, creds):
        assert "secret-value" not in repr(value) and "secret-value" not in str(value)
    assert token.usable_at(now + timedelta(minutes=54))
    assert not token.usable_at(now + timedelta(minutes=56))  # under 5 minutes left


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        (OAuthSettings(OAuthProvider.MICROSOFT365_APP, client_id="c"), "oauth.tenant_id"),
        (OAuthSettings(OAuthProvider.GOOGLE_DELEGATED, client_id="c c"), "oauth.client_id"),
        (
            OAuthSettings(OAuthProvider.GENERIC, client_id="c", token_url="https://x.example/t"),
            "oauth.scopes",
        ),
        (
            OAuthSettings(OAuthProvider.GOOGLE_DELEGATED, client_id="c", client_cert_pem="x"),
            "oauth.client_cert_pem",
        ),
        (
            OAuthSettings(
                OAuthProvider.MICROSOFT365_APP, client_id="c", tenant_id="t", include_imap=True
            ),
            "oauth.include_imap",
        ),
        (
            OAuthSettings(
                OAuthProvider.GOOGLE_DELEGATED, client_id="c", token_url="https://x.example/t"
            ),
            "oauth.token_url",
        ),
    ],
)
def test_validation_names_the_field(settings: OAuthSettings, field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        validate_oauth(settings, PUBLIC)
    assert err.value.field == field
