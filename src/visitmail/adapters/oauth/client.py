"""Token requests over HTTP (httpx), one per call: the :class:`TokenEndpointClient` port.

What each provider kind sends (RFC 6749 form posts):

* refresh token (Microsoft / Google delegated, generic): ``grant_type=refresh_token``,
  ``client_id``, ``refresh_token``, the scopes (not for Google), and ``client_secret``
  when one is stored (confidential clients);
* client credentials (Microsoft app-only, generic): ``client_id`` + ``client_secret``, or
  for a certificate a signed client assertion (RFC 7523: RS256, ``x5t`` = the certificate's
  SHA-1 thumbprint, ``aud`` = the token URL, five minutes valid);
* Google service account: ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` with
  a JWT signed by the key file's private key, ``iss`` = its ``client_email``, ``sub`` = the
  mailbox, ``scope`` = the requested scopes.

Before each request the token URL's host is resolved and every address must pass the
operator's :class:`NetworkPolicy` (the SMTP host's SSRF guard); redirects are not
followed. httpx resolves the name again to connect: a name re-pointed between the two
lookups could still reach another address, but over ``https`` the certificate must then
match the token endpoint's name, which an internal service does not hold.

A refusal or a network error becomes :class:`OAuthTokenFailed` with a fix;
the endpoint's error text is shown with the request's secrets masked.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import json
import socket
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import httpx
from joserfc import jwt
from joserfc.jwk import RSAKey

from visitmail.domain.network_policy import REFUSED, NetworkPolicy
from visitmail.domain.oauth import GenericGrant, OAuthProvider, OAuthSettings, requested_scopes
from visitmail.domain.oauth_tokens import (
    OAuthCredentials,
    OAuthTokenFailed,
    TokenGrant,
    explain_token_error,
)

Resolver = Callable[[str, int], Awaitable[list[str]]]
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_EXPIRES_IN = 3600.0
MAX_RESPONSE_BYTES = 64_000


async def _system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class HttpTokenClient:
    """``policy``: the operator's networks; ``timeout``: seconds for the whole request
    (the token service holds a row lock meanwhile, so it is kept short)."""

    def __init__(
        self,
        policy: NetworkPolicy,
        *,
        timeout: float = 15.0,
        resolver: Resolver | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self._policy = policy
        self._timeout = timeout
        self._resolve = resolver or _system_resolver
        self._verify = verify

    async def fetch(
        self, settings: OAuthSettings, credentials: OAuthCredentials, *, mailbox: str, url: str
    ) -> TokenGrant:
        await self._check_address(url)
        form = build_form(settings, credentials, mailbox=mailbox, url=url)
        try:
            async with httpx.AsyncClient(
                timeout=self._timeout, follow_redirects=False, verify=self._verify
            ) as client:
                response = await client.post(url, data=form, headers={"Accept": "application/json"})
        except httpx.HTTPError as e:
            raise OAuthTokenFailed(
                f"The token endpoint could not be reached ({type(e).__name__}).",
                fix="Check the network between visitmail and the provider; visitmail tries "
                "again later.",
            ) from None
        return grant_of(settings.provider, response, _secrets_in(form, credentials))

    async def _check_address(self, url: str) -> None:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            addresses = [str(ipaddress.ip_address(host))]
        except ValueError:
            try:
                addresses = await self._resolve(host, port)
            except (OSError, UnicodeError):
                raise OAuthTokenFailed(
                    f"The token endpoint's host {host} could not be resolved.",
                    fix="Check the token URL (or the operator's OAuth endpoint setting).",
                ) from None
        for address in addresses:
            try:
                ip = ipaddress.ip_address(address.split("%", 1)[0])
            except ValueError:
                ip = None
            if ip is None or not self._policy.permits(ip, port):
                raise OAuthTokenFailed(
                    f"The token endpoint {host} {REFUSED}.",
                    fix="Use the provider's public token endpoint.",
                    reconnect=True,
                )


def build_form(
    settings: OAuthSettings, credentials: OAuthCredentials, *, mailbox: str, url: str
) -> dict[str, str]:
    """The form fields of the token request for ``settings``' grant."""
    p = settings.provider
    scope = " ".join(requested_scopes(settings))
    form: dict[str, str] = {}
    if p is OAuthProvider.GOOGLE_SERVICE_ACCOUNT:
        assert credentials.service_account_key is not None
        form["grant_type"] = JWT_BEARER
        form["assertion"] = service_account_assertion(
            credentials.service_account_key, mailbox=mailbox, scope=scope, audience=url
        )
        return form
    assert settings.client_id is not None  # validate_oauth requires it for these kinds
    form["client_id"] = settings.client_id
    if settings.uses_refresh_token:
        assert credentials.refresh_token is not None
        form["grant_type"] = "refresh_token"
        form["refresh_token"] = credentials.refresh_token
        if p is not OAuthProvider.GOOGLE_DELEGATED:  # Google keeps the consented scopes
            form["scope"] = scope
    else:
        form["grant_type"] = GenericGrant.CLIENT_CREDENTIALS.value
        form["scope"] = scope
    if settings.client_cert_pem and credentials.private_key_pem:
        form["client_assertion_type"] = ASSERTION_TYPE
        form["client_assertion"] = certificate_assertion(
            settings.client_cert_pem,
            credentials.private_key_pem,
            client_id=settings.client_id,
            audience=url,
        )
    elif credentials.client_secret:
        form["client_secret"] = credentials.client_secret
    return form


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def certificate_assertion(cert_pem: str, key_pem: str, *, client_id: str, audience: str) -> str:
    """Microsoft's certificate credential: a JWT signed with the certificate's key."""
    der = ssl.PEM_cert_to_DER_cert(cert_pem.strip())
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT", "x5t": _b64url(hashlib.sha1(der).digest())}  # noqa: S324 (x5t is SHA-1 by definition)
    claims = {
        "aud": audience,
        "iss": client_id,
        "sub": client_id,
        "jti": str(uuid.uuid4()),
        "nbf": now,
        "iat": now,
        "exp": now + 300,
    }
    return jwt.encode(header, claims, _rsa_key(key_pem))


def service_account_assertion(key_json: str, *, mailbox: str, scope: str, audience: str) -> str:
    """Google's service-account grant: ``sub`` is the mailbox (domain-wide delegation)."""
    key = json.loads(key_json)
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT"}
    if isinstance(key.get("private_key_id"), str):
        header["kid"] = key["private_key_id"]
    claims = {
        "iss": key["client_email"],
        "sub": mailbox,
        "scope": scope,
        "aud": audience,
        "iat": now,
        "exp": now + 3600,
    }
    return jwt.encode(header, claims, _rsa_key(str(key["private_key"])))


def _rsa_key(pem: str) -> RSAKey:
    try:
        return RSAKey.import_key(pem)
    except Exception:
        raise OAuthTokenFailed(
            "The stored private key cannot be used to sign (it is not an RSA key).",
            fix="Enter the certificate's (or service account's) RSA private key again.",
            reconnect=True,
        ) from None


def _secrets_in(form: dict[str, str], credentials: OAuthCredentials) -> list[str]:
    values = [
        form.get("client_assertion"),
        form.get("assertion"),
        credentials.client_secret,
        credentials.refresh_token,
    ]
    return [v for v in values if v and len(v) >= 4]


def mask_secrets(text: str | None, secrets: list[str]) -> str | None:
    """``text`` with every one of ``secrets`` replaced by ``[redacted]``: a provider's
    error text may echo what it was sent."""
    if text is None:
        return None
    for secret in secrets:
        text = text.replace(secret, "[redacted]")
    return text


def grant_of(provider: OAuthProvider, response: httpx.Response, secrets: list[str]) -> TokenGrant:
    """The token endpoint's answer as a :class:`TokenGrant`, or the explained error
    (``explain_token_error``) with ``secrets`` masked out of the provider's text. A body
    over ``MAX_RESPONSE_BYTES`` or not JSON counts as no body."""
    body: object = None
    if len(response.content) <= MAX_RESPONSE_BYTES:
        try:
            body = response.json()
        except ValueError:
            body = None
    data = body if isinstance(body, dict) else {}
    token = data.get("access_token")
    if response.status_code == 200 and isinstance(token, str) and token:
        expires_in = data.get("expires_in", DEFAULT_EXPIRES_IN)
        try:
            seconds = float(expires_in)
        except (TypeError, ValueError):
            seconds = DEFAULT_EXPIRES_IN
        scope = data.get("scope")
        rotated = data.get("refresh_token")
        return TokenGrant(
            access_token=token,
            expires_in=max(0.0, seconds),
            refresh_token=rotated if isinstance(rotated, str) and rotated else None,
            scopes=tuple(scope.split()) if isinstance(scope, str) else None,
        )
    error = data.get("error")
    description = data.get("error_description")
    raise explain_token_error(
        provider,
        response.status_code,
        mask_secrets(error if isinstance(error, str) else None, secrets),
        mask_secrets(description if isinstance(description, str) else None, secrets),
    )
