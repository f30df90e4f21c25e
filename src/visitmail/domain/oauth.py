"""OAuth2 for sending (SMTP XOAUTH2): the provider kinds, their settings and validation,
the token endpoints, the scopes SMTP needs, and token errors said in plain words.

Pure values, no I/O. Validation happens at construction (:func:`validate_oauth`) and names
the field (``oauth.tenant_id``, ``oauth.token_url``, ...). Secrets (client secret, private
key, service-account key, refresh and access tokens) are *not* part of these values: they
are stored sealed, next to the settings, and only the token service opens them. Tokens
and token errors: ``domain/oauth_tokens.py``.

Provider kinds:

* ``microsoft365_delegated``: a refresh token from an authorization-code sign-in of the
  mailbox; scopes ``https://outlook.office.com/SMTP.Send offline_access`` (plus
  ``IMAP.AccessAsUser.All`` when ``include_imap``). Microsoft rotates the refresh token on
  every use: the new one is saved each time.
* ``microsoft365_app``: client credentials (tenant, client id, and a client secret *or* a
  certificate: ``client_cert_pem`` + the private key, sent as a signed client assertion);
  scope ``https://outlook.office365.com/.default``; the mailbox is the SMTP username.
* ``google_delegated``: a refresh token; scope ``https://mail.google.com/``.
* ``google_service_account``: a service-account JSON key with domain-wide delegation; a
  JWT assertion signed with its key, ``sub`` = the mailbox (the SMTP username).
* ``generic``: any token endpoint (``token_url``), client credentials or a refresh token.

Token endpoint URLs must be ``https``; plain ``http`` is accepted only for a loopback
address that the operator's :class:`NetworkPolicy` allows (a local test provider). A
literal address in the URL must pass the same guard as an SMTP host; a name is checked
when it is resolved, before the request (adapters/oauth).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from visitmail.domain.errors import InvalidInput
from visitmail.domain.network_policy import LOOPBACK, REFUSED, NetworkPolicy

MICROSOFT_AUTHORITY = "https://login.microsoftonline.com"
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"  # noqa: S105 (a URL)

SCOPE_MS_SMTP = "https://outlook.office.com/SMTP.Send"
SCOPE_MS_IMAP = "https://outlook.office.com/IMAP.AccessAsUser.All"
SCOPE_MS_OFFLINE = "offline_access"
SCOPE_MS_APP = "https://outlook.office365.com/.default"
SCOPE_GOOGLE_MAIL = "https://mail.google.com/"

MAX_SCOPES = 20
MAX_SCOPE_LENGTH = 200
MAX_URL_LENGTH = 2000

_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,253}$")
_CLIENT_ID = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces
_SCOPE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")  # RFC 6749 scope-token


class OAuthProvider(StrEnum):
    MICROSOFT365_DELEGATED = "microsoft365_delegated"
    MICROSOFT365_APP = "microsoft365_app"
    GOOGLE_DELEGATED = "google_delegated"
    GOOGLE_SERVICE_ACCOUNT = "google_service_account"
    GENERIC = "generic"

    @property
    def delegated(self) -> bool:
        """Uses a refresh token obtained by a person signing in."""
        return self in _DELEGATED

    @property
    def uses_refresh_token_kind(self) -> bool:
        """May use a refresh token (delegated kinds, and generic with that grant)."""
        return self in _DELEGATED or self is OAuthProvider.GENERIC


_DELEGATED = frozenset({OAuthProvider.MICROSOFT365_DELEGATED, OAuthProvider.GOOGLE_DELEGATED})


class GenericGrant(StrEnum):
    CLIENT_CREDENTIALS = "client_credentials"
    REFRESH_TOKEN = "refresh_token"  # noqa: S105 (a grant name)


class OAuthSecret(StrEnum):
    """The write-only OAuth secrets, named by their API path."""

    CLIENT_SECRET = "oauth.client_secret"  # noqa: S105 (a field name)
    PRIVATE_KEY = "oauth.private_key_pem"
    SERVICE_ACCOUNT_KEY = "oauth.service_account_key"
    REFRESH_TOKEN = "oauth.refresh_token"  # noqa: S105


@dataclass(frozen=True, slots=True)
class OAuthSettings:
    """The non-secret half of the OAuth settings. The mailbox is the SMTP username."""

    provider: OAuthProvider
    client_id: str | None = None
    tenant_id: str | None = None
    token_url: str | None = None  # generic only
    scopes: tuple[str, ...] = ()  # empty: the provider's defaults (see requested_scopes)
    include_imap: bool = False
    grant: GenericGrant = GenericGrant.CLIENT_CREDENTIALS  # generic only
    client_cert_pem: str | None = None  # microsoft365_app with a certificate

    @property
    def uses_refresh_token(self) -> bool:
        return self.provider.delegated or (
            self.provider is OAuthProvider.GENERIC and self.grant is GenericGrant.REFRESH_TOKEN
        )

    def usable_secrets(self) -> frozenset[OAuthSecret]:
        """The secrets this kind can use (a secret outside this set is refused)."""
        p = self.provider
        if p is OAuthProvider.GOOGLE_SERVICE_ACCOUNT:
            return frozenset({OAuthSecret.SERVICE_ACCOUNT_KEY})
        if p is OAuthProvider.MICROSOFT365_APP:
            if self.client_cert_pem:
                return frozenset({OAuthSecret.PRIVATE_KEY})
            return frozenset({OAuthSecret.CLIENT_SECRET})
        found = {OAuthSecret.CLIENT_SECRET}
        if self.uses_refresh_token:
            found.add(OAuthSecret.REFRESH_TOKEN)
        return frozenset(found)

    def required_secrets(self) -> frozenset[OAuthSecret]:
        """The secrets that must be set at save time. A delegated refresh token is not:
        it comes from the sign-in afterwards (a warning says to connect the account)."""
        p = self.provider
        if p is OAuthProvider.GOOGLE_SERVICE_ACCOUNT:
            return frozenset({OAuthSecret.SERVICE_ACCOUNT_KEY})
        if p is OAuthProvider.MICROSOFT365_APP:
            return self.usable_secrets()
        if p is OAuthProvider.GENERIC and self.grant is GenericGrant.CLIENT_CREDENTIALS:
            return frozenset({OAuthSecret.CLIENT_SECRET})
        return frozenset()

    def destination(self) -> tuple[object, ...]:
        """What a stored secret is bound to: it is only sent where it was saved for."""
        return (self.provider, self.tenant_id, self.client_id, self.token_url, self.grant)


@dataclass(frozen=True, slots=True)
class OAuthEndpoints:
    """The operator's endpoints (``VISITMAIL_OAUTH_MICROSOFT_AUTHORITY``,
    ``VISITMAIL_OAUTH_GOOGLE_TOKEN_URL``): the public ones by default, a local provider in
    tests."""

    microsoft_authority: str = MICROSOFT_AUTHORITY
    google_token_url: str = GOOGLE_TOKEN_URL


def token_url(settings: OAuthSettings, endpoints: OAuthEndpoints) -> str:
    """The token endpoint for ``settings`` (Microsoft: per tenant)."""
    p = settings.provider
    if p in (OAuthProvider.MICROSOFT365_DELEGATED, OAuthProvider.MICROSOFT365_APP):
        authority = endpoints.microsoft_authority.rstrip("/")
        return f"{authority}/{settings.tenant_id}/oauth2/v2.0/token"
    if p in (OAuthProvider.GOOGLE_DELEGATED, OAuthProvider.GOOGLE_SERVICE_ACCOUNT):
        return endpoints.google_token_url
    assert settings.token_url is not None  # validate_oauth requires it
    return settings.token_url


def requested_scopes(settings: OAuthSettings) -> tuple[str, ...]:
    """The scopes asked for: the settings' own, or the provider's defaults."""
    if settings.scopes:
        return settings.scopes
    p = settings.provider
    if p is OAuthProvider.MICROSOFT365_DELEGATED:
        base = (SCOPE_MS_SMTP, SCOPE_MS_OFFLINE)
        return (*base, SCOPE_MS_IMAP) if settings.include_imap else base
    if p is OAuthProvider.MICROSOFT365_APP:
        return (SCOPE_MS_APP,)
    if p in (OAuthProvider.GOOGLE_DELEGATED, OAuthProvider.GOOGLE_SERVICE_ACCOUNT):
        return (SCOPE_GOOGLE_MAIL,)
    return ()


def smtp_scopes(settings: OAuthSettings) -> tuple[str, ...]:
    """The scopes a token must carry for SMTP (what the ``scope`` test step checks)."""
    p = settings.provider
    if p is OAuthProvider.MICROSOFT365_DELEGATED:
        return (SCOPE_MS_SMTP,)
    if p is OAuthProvider.MICROSOFT365_APP:
        return (SCOPE_MS_APP,)
    if p in (OAuthProvider.GOOGLE_DELEGATED, OAuthProvider.GOOGLE_SERVICE_ACCOUNT):
        return (SCOPE_GOOGLE_MAIL,)
    return tuple(s for s in requested_scopes(settings) if s != SCOPE_MS_OFFLINE)


def missing_scopes(settings: OAuthSettings, granted: tuple[str, ...]) -> list[str]:
    """The SMTP scopes not in ``granted``. Microsoft reports delegated scopes without the
    resource prefix at times (``SMTP.Send``), so the last path part counts too."""
    short = {g.rsplit("/", 1)[-1].lower() for g in granted}
    full = {g.lower() for g in granted}
    return [
        s
        for s in smtp_scopes(settings)
        if s.lower() not in full and s.rsplit("/", 1)[-1].lower() not in short
    ]


# --- validation ----------------------------------------------------------------------------


def check_token_url(url: str, policy: NetworkPolicy, *, field_name: str) -> str:
    """``url`` if it may be used as a token endpoint, else :class:`InvalidInput`."""
    cleaned = url.strip()
    if len(cleaned) > MAX_URL_LENGTH:
        raise InvalidInput(f"must be at most {MAX_URL_LENGTH} characters", field=field_name)
    if not cleaned.isascii() or not cleaned.isprintable() or " " in cleaned:
        raise InvalidInput("must be a plain https URL", field=field_name)
    parts = urlsplit(cleaned)
    try:
        host = parts.hostname
        port = parts.port
    except ValueError:
        raise InvalidInput("must be a plain https URL", field=field_name) from None
    if parts.scheme not in ("https", "http") or not host or parts.fragment or parts.username:
        raise InvalidInput(
            "must be a plain https URL such as https://login.example.com/token", field=field_name
        )
    literal: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None and not policy.permits(literal, port):
        raise InvalidInput(f"{REFUSED}", field=field_name)
    if parts.scheme == "http":
        loopback = literal is not None and any(literal in net for net in LOOPBACK)
        if not loopback:
            raise InvalidInput(
                "must use https (plain http only for a loopback address the operator allows)",
                field=field_name,
            )
    return cleaned


def _required(value: str | None, *, field_name: str, why: str) -> str:
    if value is None or not value.strip():
        raise InvalidInput(f"is required {why}", field=field_name)
    return value.strip()


def validate_oauth(settings: OAuthSettings, policy: NetworkPolicy) -> OAuthSettings:
    """A normalized copy of ``settings`` or :class:`InvalidInput` naming ``oauth.<field>``."""
    p = settings.provider
    client_id = settings.client_id.strip() if settings.client_id else None
    tenant = settings.tenant_id.strip() if settings.tenant_id else None
    is_ms = p in (OAuthProvider.MICROSOFT365_DELEGATED, OAuthProvider.MICROSOFT365_APP)
    if is_ms:
        tenant = _required(tenant, field_name="oauth.tenant_id", why="for Microsoft 365")
        if not _TENANT.match(tenant):
            raise InvalidInput(
                "must be the directory (tenant) id or a domain such as contoso.onmicrosoft.com",
                field="oauth.tenant_id",
            )
    elif tenant:
        raise InvalidInput("is only used with Microsoft 365", field="oauth.tenant_id")
    if p is not OAuthProvider.GOOGLE_SERVICE_ACCOUNT:
        client_id = _required(client_id, field_name="oauth.client_id", why="for this provider")
    if client_id is not None and not _CLIENT_ID.match(client_id):
        raise InvalidInput(
            "must be printable ASCII without spaces, at most 255 characters",
            field="oauth.client_id",
        )
    url: str | None = None
    if p is OAuthProvider.GENERIC:
        url = check_token_url(
            _required(settings.token_url, field_name="oauth.token_url", why="for generic"),
            policy,
            field_name="oauth.token_url",
        )
    elif settings.token_url:
        raise InvalidInput(
            "is only set for generic (the operator sets the Microsoft and Google endpoints)",
            field="oauth.token_url",
        )
    if len(settings.scopes) > MAX_SCOPES:
        raise InvalidInput(f"must list at most {MAX_SCOPES} scopes", field="oauth.scopes")
    scopes: list[str] = []
    for scope in settings.scopes:
        s = scope.strip()
        if not s or len(s) > MAX_SCOPE_LENGTH or not _SCOPE.match(s):
            raise InvalidInput(
                f"each scope must be 1 to {MAX_SCOPE_LENGTH} printable characters without "
                "spaces or quotes",
                field="oauth.scopes",
            )
        if s not in scopes:
            scopes.append(s)
    if p is OAuthProvider.GENERIC and not scopes:
        raise InvalidInput("is required for generic: the scopes SMTP needs", field="oauth.scopes")
    cert = settings.client_cert_pem
    if cert is not None and not cert.strip():
        cert = None
    if cert is not None:
        if p is not OAuthProvider.MICROSOFT365_APP:
            raise InvalidInput(
                "is only used with Microsoft 365 app-only", field="oauth.client_cert_pem"
            )
        if "\x00" in cert or len(cert) > 100_000 or "-----BEGIN CERTIFICATE" not in cert:
            raise InvalidInput(
                "must be PEM text starting with -----BEGIN CERTIFICATE (at most 100 kB)",
                field="oauth.client_cert_pem",
            )
        cert = cert.strip() + "\n"
    if settings.include_imap and not p.delegated:
        raise InvalidInput(
            "is only for delegated sign-ins (Microsoft 365 or Google)", field="oauth.include_imap"
        )
    return OAuthSettings(
        provider=p,
        client_id=client_id,
        tenant_id=tenant,
        token_url=url,
        scopes=tuple(scopes),
        include_imap=settings.include_imap,
        grant=settings.grant if p is OAuthProvider.GENERIC else GenericGrant.CLIENT_CREDENTIALS,
        client_cert_pem=cert,
    )
