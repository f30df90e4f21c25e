"""The browser sign-in's two requests (the :class:`~visitmail.services.oauth_connect.
ConsentClient` port): the authorization URL (authlib builds it, with the PKCE S256
challenge) and the authorization-code exchange at the token endpoint.

The exchange is a form post like every other token request (``adapters/oauth/client``):
the token URL's address must pass the operator's network policy, redirects are not
followed, the reply's errors are explained with the request's secrets masked.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence

import httpx
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from visitmail.adapters.oauth.client import HttpTokenClient, grant_of, mask_secrets
from visitmail.domain.oauth import OAuthSettings
from visitmail.domain.oauth_tokens import OAuthCredentials, OAuthTokenFailed, TokenGrant

#: RFC 7636: 43 to 128 characters; 64 random bytes give 86.
VERIFIER_BYTES = 64


def new_code_verifier() -> str:
    return secrets.token_urlsafe(VERIFIER_BYTES)


def new_state() -> str:
    return secrets.token_urlsafe(32)


def authorization_url(
    endpoint: str,
    *,
    client_id: str,
    redirect_uri: str,
    scopes: Sequence[str],
    state: str,
    code_verifier: str,
    login_hint: str | None,
    extra: Mapping[str, str],
) -> str:
    """The URL the browser is sent to: ``response_type=code`` with the S256 challenge of
    ``code_verifier`` (the verifier itself is never in it)."""
    params: dict[str, str] = {
        "code_challenge": str(create_s256_code_challenge(code_verifier)),
        "code_challenge_method": "S256",
        "response_mode": "query",
    }
    if login_hint:
        params["login_hint"] = login_hint
    params.update(extra)
    return str(
        prepare_grant_uri(
            endpoint,
            client_id,
            "code",
            redirect_uri=redirect_uri,
            scope=list(scopes),
            state=state,
            **params,
        )
    )


class HttpConsentClient(HttpTokenClient):
    """:class:`HttpTokenClient` plus the authorization-code grant."""

    def authorization_url(
        self,
        endpoint: str,
        *,
        client_id: str,
        redirect_uri: str,
        scopes: Sequence[str],
        state: str,
        code_verifier: str,
        login_hint: str | None,
        extra: Mapping[str, str],
    ) -> str:
        return authorization_url(
            endpoint,
            client_id=client_id,
            redirect_uri=redirect_uri,
            scopes=scopes,
            state=state,
            code_verifier=code_verifier,
            login_hint=login_hint,
            extra=extra,
        )

    def new_code_verifier(self) -> str:
        return new_code_verifier()

    def new_state(self) -> str:
        return new_state()

    async def exchange_code(
        self,
        settings: OAuthSettings,
        credentials: OAuthCredentials,
        *,
        url: str,
        code: str,
        redirect_uri: str,
        code_verifier: str,
        scopes: Sequence[str],
    ) -> TokenGrant:
        """``grant_type=authorization_code`` with the verifier (and the client secret of a
        confidential client). :class:`OAuthTokenFailed` when refused or unreachable."""
        await self._check_address(url)
        assert settings.client_id is not None  # delegated kinds require it
        form = {
            "grant_type": "authorization_code",
            "client_id": settings.client_id,
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        }
        if scopes:
            form["scope"] = " ".join(scopes)  # Microsoft v2.0 asks for it; others ignore it
        if credentials.client_secret:
            form["client_secret"] = credentials.client_secret
        try:
            async with httpx.AsyncClient(
                timeout=self._timeout, follow_redirects=False, verify=self._verify
            ) as client:
                response = await client.post(url, data=form, headers={"Accept": "application/json"})
        except httpx.HTTPError as e:
            raise OAuthTokenFailed(
                f"The token endpoint could not be reached ({type(e).__name__}).",
                fix="Check the network between visitmail and the provider, then click Connect "
                "again.",
            ) from None
        masked = [v for v in (code, code_verifier, credentials.client_secret) if v]
        try:
            return grant_of(settings.provider, response, masked)
        except OAuthTokenFailed as e:
            e.message = mask_secrets(e.message, masked) or e.message
            raise
