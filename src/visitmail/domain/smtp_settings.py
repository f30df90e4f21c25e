"""An organization's outgoing SMTP server: the settings and their validation.

Pure values. Validation happens at construction (``SmtpSettings.create``) and names the
field in every error (``proxy.port``, ``limits.per_minute``). Secrets are *not* part of
these values: they travel separately as :class:`SmtpSecrets`, which never prints itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from visitmail.domain.addresses import normalize_email, refuse_line_breaks
from visitmail.domain.errors import InvalidInput
from visitmail.domain.header_text import header_safe
from visitmail.domain.network_policy import NetworkPolicy
from visitmail.domain.oauth import OAuthSettings, validate_oauth

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)
_SHA256_PIN = re.compile(r"^(sha256:)?([0-9a-fA-F]{2}:?){31}[0-9a-fA-F]{2}$")


class Security(StrEnum):
    """How the connection is protected. One enum, never two booleans that can contradict."""

    TLS = "tls"  # implicit TLS from the first byte (usually port 465)
    STARTTLS = "starttls"  # plain connect, then STARTTLS is *required* (usually 587)
    NONE = "none"  # plain text; passwords refused unless the operator allows it


# The one "not encrypted" warning: the saved settings, the connection test and the page
# all say this text, so a report that merges their warnings says it once.
UNENCRYPTED_WARNING = (
    "The connection is not encrypted (security `none`): messages, and any password, cross "
    "the network unencrypted. Choose `starttls` (usually port 587) or `tls` (usually 465) "
    "if the server offers it."
)


class AuthMethod(StrEnum):
    AUTO = "auto"  # the strongest the server offers among the ones below
    PLAIN = "plain"
    LOGIN = "login"
    CRAM_MD5 = "cram-md5"
    OAUTH2 = "oauth2"  # XOAUTH2 with a bearer token (see domain/oauth.py); never "auto"


class ProxyKind(StrEnum):
    NONE = "none"
    SOCKS5 = "socks5"
    SOCKS4 = "socks4"
    HTTP = "http"  # HTTP CONNECT


DEFAULT_PORTS = {Security.TLS: 465, Security.STARTTLS: 587, Security.NONE: 25}

# Mailbox providers that let an account send only as itself (or as what it was granted),
# even on its own domain: what happens otherwise, for the sender warning.
_SEND_AS_ONLY = {
    "smtp.office365.com": "Microsoft 365 refuses the message (554 5.2.0 SendAsDenied) "
    "unless the mailbox has Send As permission on that address",
    "smtp-mail.outlook.com": "Outlook refuses the message (SendAsDenied) unless the "
    "account may send as that address",
    "smtp.gmail.com": "Google replaces it with the account's address unless it is a "
    "verified alias (Gmail settings → Accounts → Send mail as)",
}


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 10.0
    command: float = 30.0
    overall: float = 20.0  # bound for the connection test


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """Verification is always on. Trust a private CA or pin a certificate instead of
    switching it off."""

    ca_pem: str | None = None
    pinned_sha256: str | None = None  # hex, with or without colons / "sha256:" prefix
    client_cert_pem: str | None = None  # the client key is a secret (SmtpSecrets)

    @property
    def pin_hex(self) -> str | None:
        if self.pinned_sha256 is None:
            return None
        return self.pinned_sha256.lower().removeprefix("sha256:").replace(":", "")


@dataclass(frozen=True, slots=True)
class ProxySettings:
    kind: ProxyKind = ProxyKind.NONE
    host: str | None = None
    port: int | None = None
    username: str | None = None  # the password is a secret (SmtpSecrets)

    @property
    def enabled(self) -> bool:
        return self.kind is not ProxyKind.NONE


@dataclass(frozen=True, slots=True)
class Limits:
    max_connections: int = 2
    max_messages_per_connection: int = 100
    per_minute: int | None = None
    per_hour: int | None = None
    per_day: int | None = None
    # Recipients (envelope RCPT TO) per rolling day window: a message to 3 recipients
    # costs 3. Microsoft 365 and Google count recipients, not messages.
    recipients_per_day: int | None = None

    @property
    def counts_messages(self) -> bool:
        """A per minute / hour / day budget of messages applies."""
        return bool(self.per_minute or self.per_hour or self.per_day)

    @property
    def budgeted(self) -> bool:
        """Any rate budget applies (messages or recipients)."""
        return self.counts_messages or bool(self.recipients_per_day)

    def recipient_cost(self, recipients: int) -> int:
        """Recipient units one message to ``recipients`` addresses takes: 0 without a
        recipient limit; at least 1; at most the whole day's budget, so a message bigger
        than the budget waits for a full day's window instead of forever."""
        if not self.recipients_per_day:
            return 0
        return min(max(1, recipients), self.recipients_per_day)


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int
    security: Security
    sender_email: str
    sender_name: str | None = None
    reply_to: str | None = None
    username: str | None = None
    auth_method: AuthMethod = AuthMethod.AUTO
    helo_name: str | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    tls: TlsOptions = field(default_factory=TlsOptions)
    proxy: ProxySettings = field(default_factory=ProxySettings)
    limits: Limits = field(default_factory=Limits)
    preset: str | None = None
    oauth: OAuthSettings | None = None  # set exactly when auth_method is oauth2

    @property
    def uses_auth(self) -> bool:
        return bool(self.username)

    @property
    def uses_oauth(self) -> bool:
        return self.auth_method is AuthMethod.OAUTH2 and self.oauth is not None

    def sender_domain_warning(self) -> str | None:
        """The "not every sender address may be used" trap, said in words, or ``None``."""
        if not self.username or "@" not in self.username:
            return None
        user_domain = self.username.rsplit("@", 1)[1].lower()
        sender_domain = self.sender_email.rsplit("@", 1)[1].lower()
        if user_domain == sender_domain:
            provider = _SEND_AS_ONLY.get(self.host.lower())
            if provider is None or self.username.lower() == self.sender_email.lower():
                return None
            return (
                f"The sender address {self.sender_email} is not the mailbox the account "
                f"logs in as ({self.username}): {provider}. Use the mailbox's own address, "
                "or grant that permission."
            )
        return (
            f"The sender address is on {sender_domain} but the account logs in as a "
            f"{user_domain} user. Many servers (Microsoft 365, Gmail, most relays) only let an "
            "account send as its own, verified addresses: run the connection test to check, "
            "and verify the sender domain at the provider if MAIL FROM is refused."
        )


@dataclass(frozen=True, slots=True)
class SmtpSecrets:
    """Plain-text secrets, in memory only while a connection needs them. Never printed."""

    password: str | None = None
    proxy_password: str | None = None
    client_key_pem: str | None = None

    def __repr__(self) -> str:
        present = [n for n in ("password", "proxy_password", "client_key_pem") if getattr(self, n)]
        return f"SmtpSecrets(set={present})"

    __str__ = __repr__


def _hostname(value: str, *, field_name: str) -> str:
    refuse_line_breaks(value, field=field_name)
    cleaned = value.strip()
    if not cleaned:
        raise InvalidInput("is required", field=field_name)
    if cleaned.startswith("[") and cleaned.endswith("]"):
        cleaned = cleaned[1:-1]
    if ":" in cleaned:  # an IPv6 literal
        import ipaddress

        try:
            ipaddress.IPv6Address(cleaned)
        except ValueError:
            raise InvalidInput("is not a valid host name or address", field=field_name) from None
        return cleaned
    if not _HOSTNAME.match(cleaned):
        raise InvalidInput("is not a valid host name or address", field=field_name)
    return cleaned.rstrip(".").lower()


def _port(value: int, *, field_name: str) -> int:
    if not 1 <= value <= 65535:
        raise InvalidInput("must be between 1 and 65535", field=field_name)
    return value


def _text(value: str | None, *, field_name: str, max_length: int = 200) -> str | None:
    if value is None:
        return None
    cleaned = header_safe(value, field=field_name, allow_tab=False).strip()
    if not cleaned:
        return None
    if len(cleaned) > max_length:
        raise InvalidInput(f"must be at most {max_length} characters", field=field_name)
    return cleaned


def _positive(value: float | int | None, *, field_name: str, maximum: float) -> None:
    if value is None:
        return
    if value <= 0 or value > maximum:
        raise InvalidInput(f"must be greater than 0 and at most {maximum:g}", field=field_name)


def _pem(value: str | None, *, field_name: str, marker: str) -> str | None:
    if value is None or not value.strip():
        return None
    if "\x00" in value:
        raise InvalidInput("must not contain NUL characters", field=field_name)
    if f"-----BEGIN {marker}" not in value:
        raise InvalidInput(f"must be PEM text starting with -----BEGIN {marker}", field=field_name)
    if len(value) > 100_000:
        raise InvalidInput("is too large (at most 100 kB)", field=field_name)
    return value.strip() + "\n"


def validate(settings: SmtpSettings, policy: NetworkPolicy | None = None) -> SmtpSettings:
    """Return a normalized copy of ``settings`` or raise :class:`InvalidInput` naming the
    first bad field. ``policy`` (the operator's networks) judges an OAuth token URL."""
    host = _hostname(settings.host, field_name="host")
    port = _port(settings.port, field_name="port")
    sender = normalize_email(settings.sender_email, field="sender_email")
    reply_to = normalize_email(settings.reply_to, field="reply_to") if settings.reply_to else None
    sender_name = _text(settings.sender_name, field_name="sender_name")
    username = _text(settings.username, field_name="username", max_length=320)
    helo = _hostname(settings.helo_name, field_name="helo_name") if settings.helo_name else None

    t = settings.timeouts
    _positive(t.connect, field_name="timeouts.connect", maximum=120)
    _positive(t.command, field_name="timeouts.command", maximum=600)
    _positive(t.overall, field_name="timeouts.overall", maximum=300)

    tls = settings.tls
    pin = tls.pinned_sha256.strip() if tls.pinned_sha256 else None
    if pin and not _SHA256_PIN.match(pin):
        raise InvalidInput(
            "must be a SHA-256 fingerprint: 64 hex digits, colons allowed",
            field="tls.pinned_sha256",
        )
    tls = TlsOptions(
        ca_pem=_pem(tls.ca_pem, field_name="tls.ca_pem", marker="CERTIFICATE"),
        pinned_sha256=pin or None,
        client_cert_pem=_pem(
            tls.client_cert_pem, field_name="tls.client_cert_pem", marker="CERTIFICATE"
        ),
    )

    proxy = settings.proxy
    if proxy.enabled:
        if not proxy.host:
            raise InvalidInput("is required when a proxy is chosen", field="proxy.host")
        if proxy.port is None:
            raise InvalidInput("is required when a proxy is chosen", field="proxy.port")
        proxy = ProxySettings(
            kind=proxy.kind,
            host=_hostname(proxy.host, field_name="proxy.host"),
            port=_port(proxy.port, field_name="proxy.port"),
            username=_text(proxy.username, field_name="proxy.username", max_length=255),
        )
    else:
        proxy = ProxySettings()

    lim = settings.limits
    for name in ("max_connections", "max_messages_per_connection"):
        _positive(getattr(lim, name), field_name=f"limits.{name}", maximum=10_000)
    for name in ("per_minute", "per_hour", "per_day", "recipients_per_day"):
        _positive(getattr(lim, name), field_name=f"limits.{name}", maximum=10_000_000)

    oauth: OAuthSettings | None = None
    if settings.auth_method is AuthMethod.OAUTH2:
        if settings.oauth is None:
            raise InvalidInput("is required with auth_method oauth2", field="oauth")
        if not username:
            raise InvalidInput(
                "is required with oauth2: the mailbox to send as (e.g. sales@example.com)",
                field="username",
            )
        oauth = validate_oauth(settings.oauth, policy or NetworkPolicy())
    elif settings.oauth is not None:
        raise InvalidInput("is only used with auth_method oauth2", field="oauth")

    return SmtpSettings(
        host=host,
        port=port,
        security=settings.security,
        sender_email=sender,
        sender_name=sender_name,
        reply_to=reply_to,
        username=username,
        auth_method=settings.auth_method,
        helo_name=helo,
        timeouts=t,
        tls=tls,
        proxy=proxy,
        limits=lim,
        preset=_text(settings.preset, field_name="preset", max_length=64),
        oauth=oauth,
    )
