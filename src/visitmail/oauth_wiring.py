"""Wiring for OAuth2 sending: the token service of a process, built from the runtime.

The token endpoint is reached under the operator's network policy (the SMTP SSRF guard,
``VISITMAIL_SMTP_ALLOWED_NETWORKS``); the Microsoft and Google endpoints come from
``VISITMAIL_OAUTH_MICROSOFT_AUTHORITY`` / ``VISITMAIL_OAUTH_GOOGLE_TOKEN_URL``.
"""

from __future__ import annotations

from visitmail.adapters.crypto.secret_box import SecretBox
from visitmail.adapters.oauth.client import HttpTokenClient
from visitmail.domain.network_policy import NetworkPolicy
from visitmail.runtime import Runtime
from visitmail.services.clock import Clock, utcnow
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
