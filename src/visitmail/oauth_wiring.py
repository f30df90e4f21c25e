"""Wiring for OAuth2 sending: the token service of a process, built from the runtime.

The token endpoint is reached under the operator's network policy (the SMTP SSRF guard,
``VISITMAIL_SMTP_ALLOWED_NETWORKS``); the Microsoft and Google endpoints come from
``VISITMAIL_OAUTH_MICROSOFT_AUTHORITY`` / ``VISITMAIL_OAUTH_GOOGLE_TOKEN_URL`` (and, for the
browser Connect, ``VISITMAIL_OAUTH_GOOGLE_AUTHORIZATION_URL`` and ``VISITMAIL_PUBLIC_URL``).
"""

from __future__ import annotations

from visitmail.adapters.crypto.secret_box import SecretBox
from visitmail.adapters.oauth.authorization import HttpConsentClient
from visitmail.adapters.oauth.client import HttpTokenClient
from visitmail.domain.network_policy import NetworkPolicy
from visitmail.domain.oauth_connect import CALLBACK_PATH
from visitmail.runtime import Runtime
from visitmail.services.clock import Clock, utcnow
from visitmail.services.oauth_connect import ConnectConfig, ConsentClient
from visitmail.services.oauth_tokens import TokenEndpointClient, TokenService


def token_policy(runtime: Runtime) -> NetworkPolicy:
    return NetworkPolicy.of(runtime.settings.smtp_allowed_networks)


def build_token_service(
    runtime: Runtime,
    *,
    policy: NetworkPolicy | None = None,
    clock: Clock = utcnow,
    client: TokenEndpointClient | None = None,
) -> TokenService:
    return TokenService(
        runtime.uow,
        SecretBox(runtime.keyring),
        client or HttpTokenClient(policy or token_policy(runtime)),
        runtime.settings.oauth_endpoints,
        clock=clock,
    )


def build_consent_client(runtime: Runtime, *, policy: NetworkPolicy | None = None) -> ConsentClient:
    """The browser Connect's client: authorization URLs, and the code exchange under the
    same network policy as every token request."""
    return HttpConsentClient(policy or token_policy(runtime))


def connect_config(runtime: Runtime, base_url: str) -> ConnectConfig:
    """Endpoints and the redirect URI: ``VISITMAIL_PUBLIC_URL`` (else ``base_url``, the
    address this request came to) + the callback path."""
    public = runtime.settings.public_url or base_url.rstrip("/")
    return ConnectConfig(
        endpoints=runtime.settings.oauth_endpoints,
        google_authorization_url=runtime.settings.oauth_google_authorization_url,
        redirect_uri=public + CALLBACK_PATH,
    )
