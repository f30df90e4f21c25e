"""Connecting a delegated mailbox in the browser: the OAuth2 authorization-code flow with
PKCE (RFC 6749 section 4.1, RFC 7636), as values and rules, no I/O.

What is decided here:

* **Where the browser goes**: Microsoft ``<authority>/<tenant>/oauth2/v2.0/authorize``,
  Google ``VISITMAIL_OAUTH_GOOGLE_AUTHORIZATION_URL`` (``accounts.google.com`` by default);
  only the delegated kinds (``microsoft365_delegated``, ``google_delegated``) connect here.
* **What is asked**: the scopes of :func:`~visitmail.domain.oauth.requested_scopes`
  (Microsoft: ``SMTP.Send offline_access`` + IMAP when asked; Google
  ``https://mail.google.com/``), ``login_hint`` = the mailbox, and for Google
  ``access_type=offline`` + ``prompt=consent`` so a refresh token comes back every time.
* **The pending sign-in** (:class:`PendingConnect`): one per organization, stored
  server-side; the ``state`` is a random value of which only a SHA-256 hash is stored;
  the PKCE verifier is stored sealed and never leaves the server except in the token
  request. It expires after :data:`CONNECT_TTL` (10 minutes), is bound to the user (and,
  from the web UI, to the login session) and is used once. Saving new settings drops it.
* **What a failed sign-in means** (:func:`explain_callback_error`): the provider's
  ``error`` / ``AADSTS`` codes in plain words, each with its fix; token-endpoint errors
  use :func:`~visitmail.domain.oauth.explain_token_error`.

Errors are :class:`ConnectFailed` (HTTP 400), whose message never holds a code, a state,
a verifier or a token.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from uuid import UUID

from visitmail.domain.errors import VisitmailError
from visitmail.domain.oauth import OAuthProvider, OAuthSettings, requested_scopes
from visitmail.domain.oauth_tokens import OAuthTokenFailed, explain_token_error

CONNECT_TTL = timedelta(minutes=10)
CALLBACK_PATH = "/settings/smtp/oauth/callback"
GOOGLE_AUTHORIZATION_URL = "https://accounts.google.com/o/oauth2/v2/auth"
#: Bounds on what comes back in the callback (a Microsoft code is about 1 kB).
MAX_STATE_LENGTH = 200
MAX_CODE_LENGTH = 4096
MAX_ERROR_LENGTH = 2000

PROVIDER_NAMES = {
    OAuthProvider.MICROSOFT365_DELEGATED: "Microsoft 365",
    OAuthProvider.GOOGLE_DELEGATED: "Google",
}


class ConnectFailed(VisitmailError):
    """The sign-in did not connect the mailbox; ``fix`` says what to do. Nothing was
    stored."""

    code = "oauth_connect_failed"

    def __init__(self, message: str, *, fix: str, field: str | None = "state") -> None:
        super().__init__(message, field=field)
        self.fix = fix


def provider_name(provider: OAuthProvider) -> str:
    return PROVIDER_NAMES.get(provider, provider.value)


def check_connectable(settings: OAuthSettings | None) -> OAuthSettings:
    """The OAuth settings if a browser sign-in can connect them, else :class:`ConnectFailed`
    naming the field to change."""
    if settings is None:
        raise ConnectFailed(
            "The mail server is not set to OAuth2.",
            fix="Choose the authentication method OAuth2 with Microsoft 365 or Google "
            "(delegated), save, then connect.",
            field="auth_method",
        )
    if not settings.provider.delegated:
        raise ConnectFailed(
            f"{settings.provider.value} does not sign in with a mailbox: it needs no Connect.",
            fix="Run the connection test: this provider kind gets its tokens by itself.",
            field="oauth.provider",
        )
    return settings


def authorization_endpoint(
    settings: OAuthSettings, *, microsoft_authority: str, google_authorization_url: str
) -> str:
    """Where the browser signs in for ``settings`` (a delegated kind)."""
    if settings.provider is OAuthProvider.MICROSOFT365_DELEGATED:
        return f"{microsoft_authority.rstrip('/')}/{settings.tenant_id}/oauth2/v2.0/authorize"
    return google_authorization_url


def extra_parameters(settings: OAuthSettings) -> dict[str, str]:
    """Provider-specific authorization parameters. Google returns a refresh token only with
    ``access_type=offline``, and again on a reconnect only with ``prompt=consent``."""
    if settings.provider is OAuthProvider.GOOGLE_DELEGATED:
        return {"access_type": "offline", "prompt": "consent"}
    return {}


def scopes_to_request(settings: OAuthSettings) -> tuple[str, ...]:
    return requested_scopes(settings)


def state_hash(state: str) -> str:
    return hashlib.sha256(state.encode("utf-8")).hexdigest()


def session_hash(session_secret: str) -> str:
    """What binds a pending sign-in to a login session (the cookie is never stored)."""
    return hashlib.sha256(b"visitmail-oauth-connect\x00" + session_secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class PendingConnect:
    """A started sign-in, stored with the organization's OAuth settings.

    ``verifier_sealed``: the PKCE verifier, sealed; ``destination``: the OAuth settings it
    was started for (provider, tenant, client) and ``mailbox``, compared again before the
    tokens are stored."""

    state_hash: str
    verifier_sealed: str
    user_id: UUID
    session_hash: str | None  # None: started through the API (bound to the user only)
    provider: OAuthProvider
    client_id: str
    tenant_id: str | None
    mailbox: str
    redirect_uri: str
    started_at: datetime
    expires_at: datetime
    used: bool = False

    def __repr__(self) -> str:
        return (
            f"PendingConnect(provider={self.provider.value}, user_id={self.user_id}, "
            f"expires_at={self.expires_at.isoformat()}, used={self.used})"
        )

    __str__ = __repr__

    def used_now(self) -> PendingConnect:
        return replace(self, used=True)

    def matches(self, settings: OAuthSettings, mailbox: str | None) -> bool:
        return (
            settings.provider is self.provider
            and settings.client_id == self.client_id
            and settings.tenant_id == self.tenant_id
            and mailbox == self.mailbox
        )


_RESTART = "Start again with Connect on the mail server page."


def check_state(
    pending: PendingConnect | None,
    state: str,
    *,
    user_id: UUID,
    session: str | None,
    now: datetime,
) -> PendingConnect:
    """The pending sign-in ``state`` belongs to, or :class:`ConnectFailed`: unknown or
    tampered, already used, expired, or started by another user or login session."""
    given = state_hash(state) if 0 < len(state) <= MAX_STATE_LENGTH else ""
    if pending is None or not given or not hmac.compare_digest(given, pending.state_hash):
        raise ConnectFailed(
            "This sign-in does not match a Connect started here (the state is unknown, "
            "altered, or belongs to an older Connect).",
            fix=_RESTART,
        )
    if pending.used:
        raise ConnectFailed(
            "This sign-in was already used: each Connect completes once.", fix=_RESTART
        )
    if now >= pending.expires_at:
        minutes = int(CONNECT_TTL.total_seconds() // 60)
        raise ConnectFailed(
            f"This sign-in expired: it must be completed within {minutes} minutes of "
            "clicking Connect.",
            fix=_RESTART,
        )
    same_session = pending.session_hash is None or (
        session is not None and hmac.compare_digest(pending.session_hash, session_hash(session))
    )
    if pending.user_id != user_id or not same_session:
        raise ConnectFailed(
            "This sign-in was started by another user or in another login session.",
            fix="Sign in to visitmail as the admin who clicked Connect, or " + _RESTART.lower(),
        )
    return pending


def _admin_consent_fix(provider: OAuthProvider) -> str:
    if provider is OAuthProvider.MICROSOFT365_DELEGATED:
        return (
            "Click Connect again and choose Accept. If your organization lets only "
            "administrators consent, ask one to grant admin consent in the Microsoft Entra "
            "admin center (Enterprise applications > your app > Permissions)."
        )
    return (
        "Click Connect again and choose Allow. In Google Workspace an administrator may have "
        "to trust the app first (Admin console > Security > API controls)."
    )


def explain_callback_error(
    provider: OAuthProvider, error: str, description: str | None
) -> ConnectFailed:
    """The provider's ``error`` (and ``error_description``) sent back to the callback, in
    plain words with the fix."""
    text = (description or "").strip()
    shown = text.splitlines()[0][:300].rstrip(". ") if text else ""
    said = f" The provider said: {error[:100]}" + (f" ({shown})" if shown else "") + "."
    if "AADSTS50011" in text:
        return ConnectFailed(
            "The redirect URI is not registered for the app." + said,
            fix="Add the redirect URI shown on the mail server page to the app registration "
            "(Microsoft Entra admin center > App registrations > your app > Authentication > "
            "Web), then click Connect again.",
            field=None,
        )
    if "AADSTS700016" in text or "AADSTS90002" in text:
        return ConnectFailed(
            "The app or the tenant was not found." + said,
            fix="Check the client (application) id and the tenant id in the OAuth settings.",
            field=None,
        )
    if "AADSTS50020" in text or "AADSTS50034" in text:
        return ConnectFailed(
            "The account that signed in does not belong to this tenant." + said,
            fix="Sign in with the mailbox itself (the username on this page), in the tenant "
            "the settings name.",
            field=None,
        )
    if error == "access_denied" or "AADSTS65004" in text:
        return ConnectFailed(
            "The sign-in was cancelled or the consent was refused, so no token was issued." + said,
            fix=_admin_consent_fix(provider),
            field=None,
        )
    if "AADSTS65001" in text or error == "consent_required":
        return ConnectFailed(
            "The app needs consent before it can send mail." + said,
            fix=_admin_consent_fix(provider),
            field=None,
        )
    if error in ("invalid_scope", "unauthorized_client", "invalid_request", "invalid_client"):
        failed = explain_token_error(provider, None, error, description)
        return from_token_failure(failed)
    return ConnectFailed(
        "The provider did not complete the sign-in." + said,
        fix="Click Connect again; if it keeps failing, check the app registration and the "
        "OAuth settings.",
        field=None,
    )


def from_token_failure(failed: OAuthTokenFailed) -> ConnectFailed:
    """A refused code exchange (``invalid_grant``: the code expired, was used, or the PKCE
    verifier does not match; a wrong client secret; ...) as a connect failure."""
    return ConnectFailed(
        "The sign-in could not be completed: " + failed.message,
        fix=failed.fix
        if failed.error != "invalid_grant"
        else "Click Connect again and finish the sign-in within a few minutes.",
        field=None,
    )


def no_refresh_token(provider: OAuthProvider) -> ConnectFailed:
    if provider is OAuthProvider.GOOGLE_DELEGATED:
        fix = (
            "Remove visitmail's access in the Google account (myaccount.google.com > "
            "Security > Third-party apps) and click Connect again."
        )
    else:
        fix = "Keep the offline_access scope in the OAuth settings and click Connect again."
    return ConnectFailed(
        "The provider signed the mailbox in but returned no refresh token, so visitmail "
        "could not send later.",
        fix=fix,
        field=None,
    )


@dataclass(frozen=True, slots=True)
class ConnectStart:
    """Where to send the browser. ``state`` is for the API caller (who sends it back with
    the code); the page never shows it."""

    authorization_url: str
    state: str
    redirect_uri: str
    expires_at: datetime

    def __repr__(self) -> str:
        return f"ConnectStart(redirect_uri={self.redirect_uri!r}, expires_at={self.expires_at})"

    __str__ = __repr__
