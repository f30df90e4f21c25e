"""OAuth2 access tokens for sending, as values: what a token endpoint answered, the
secrets a request needs, the token a connection uses, and a refused request said in plain
words with its fix (:func:`explain_token_error`). Nothing here prints a secret.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timedelta

from visitmail.domain.errors import VisitmailError
from visitmail.domain.oauth import OAuthProvider

#: An access token with less than this left is not used for a new connection.
MIN_TOKEN_LIFETIME = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A bearer token for one or more connections. Never printed."""

    token: str
    expires_at: datetime
    scopes: tuple[str, ...] = ()
    refreshed: bool = False  # fetched just now (not taken from the cache)

    def usable_at(self, now: datetime) -> bool:
        return self.expires_at - now >= MIN_TOKEN_LIFETIME

    def __repr__(self) -> str:
        return f"AccessToken(expires_at={self.expires_at.isoformat()}, scopes={self.scopes})"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """What a token endpoint answered (from the adapter). Never printed."""

    access_token: str
    expires_in: float
    refresh_token: str | None = None  # a rotated refresh token, to be saved
    scopes: tuple[str, ...] | None = None  # None: the endpoint did not say

    def __repr__(self) -> str:
        return f"TokenGrant(expires_in={self.expires_in}, rotated={self.refresh_token is not None})"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class OAuthCredentials:
    """The opened secrets a token request needs. Never printed."""

    client_secret: str | None = None
    private_key_pem: str | None = None
    service_account_key: str | None = None
    refresh_token: str | None = None

    def __repr__(self) -> str:
        present = [
            n
            for n in ("client_secret", "private_key_pem", "service_account_key", "refresh_token")
            if getattr(self, n)
        ]
        return f"OAuthCredentials(set={present})"

    __str__ = __repr__


class OAuthTokenFailed(VisitmailError):
    """No access token could be had. ``fix`` says what to do; ``reconnect`` is True when
    only a person can repair it (sign in again, enter the current secret)."""

    code = "oauth_token_failed"

    def __init__(
        self,
        message: str,
        *,
        fix: str,
        reconnect: bool = False,
        error: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message, field="oauth")
        self.fix = fix
        self.reconnect = reconnect
        self.error = error  # the endpoint's ``error`` value, e.g. invalid_grant
        self.status = status


_RECONNECT = (
    "Reconnect the account: sign in with the mailbox again (or store a new refresh token), "
    "then run the connection test."
)


def explain_token_error(
    provider: OAuthProvider, status: int | None, error: str | None, description: str | None
) -> OAuthTokenFailed:
    """An endpoint's error reply (``error`` / ``error_description``) in plain words."""
    text = (description or "").strip()
    shown = text.splitlines()[0][:300] if text else ""
    said = f" The provider said: {error or status}" + (f" ({shown})" if shown else "") + "."
    if "AADSTS7000215" in text or "AADSTS7000222" in text:
        expired = "AADSTS7000222" in text
        return OAuthTokenFailed(
            ("The client secret has expired." if expired else "The client secret is wrong.") + said,
            fix="Enter the current client secret: in the Microsoft Entra admin center, "
            "App registrations > your app > Certificates & secrets, create a new secret and "
            "copy its Value (not its ID).",
            reconnect=True,
            error=error,
            status=status,
        )
    if "AADSTS700082" in text or "AADSTS50173" in text or "AADSTS700084" in text:
        return OAuthTokenFailed(
            "The refresh token has expired or was revoked (for example after a password "
            "change or a long time unused)." + said,
            fix=_RECONNECT,
            reconnect=True,
            error=error,
            status=status,
        )
    if "Token has been expired or revoked" in text or error == "invalid_grant":
        return OAuthTokenFailed(
            "The provider no longer accepts the stored grant (the refresh token expired or "
            "was revoked, or the sign-in was withdrawn)." + said,
            fix=_RECONNECT
            if provider.uses_refresh_token_kind
            else "Check the service account's domain-wide delegation and the mailbox "
            "(the SMTP username), then run the connection test.",
            reconnect=True,
            error=error,
            status=status,
        )
    if error in ("invalid_client", "unauthorized_client"):
        return OAuthTokenFailed(
            "The provider does not accept the client credentials." + said,
            fix="Check the client id and enter the current client secret (or key).",
            reconnect=True,
            error=error,
            status=status,
        )
    if error == "invalid_scope":
        return OAuthTokenFailed(
            "The provider refused the requested scopes." + said,
            fix="Grant the app the SMTP permission (Microsoft: SMTP.Send; Google: "
            "https://mail.google.com/) and consent to it as an administrator.",
            reconnect=True,
            error=error,
            status=status,
        )
    if status is not None and status >= 500:
        return OAuthTokenFailed(
            "The token endpoint is unavailable." + said,
            fix="Nothing to change: visitmail tries again later.",
            error=error,
            status=status,
        )
    return OAuthTokenFailed(
        "The token endpoint refused the request." + said,
        fix="Check the OAuth settings (tenant, client id, secret) and run the connection test.",
        reconnect=status is not None and 400 <= status < 500,
        error=error,
        status=status,
    )


def xoauth2_initial_response(user: str, token: str) -> str:
    """The base64 XOAUTH2 string: ``user=<mailbox>^Aauth=Bearer <token>^A^A``."""
    raw = f"user={user}\x01auth=Bearer {token}\x01\x01"
    return base64.b64encode(raw.encode("utf-8")).decode("ascii")


@dataclass(frozen=True, slots=True)
class TokenCheck:
    """The connection test's token step, done by the service before the conversation:
    the token (``None`` if it failed), the failure with its fix, and how long it took."""

    token: AccessToken | None
    failure: OAuthTokenFailed | None = None
    duration_ms: int = 0
