"""Operator settings, read from ``VISITMAIL_*`` environment variables (and ``.env``).

A broken configuration is refused at start with one line that names the variable
(:class:`ConfigError`); nothing here ever echoes a key.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from visitmail.domain.oauth import OAuthEndpoints

DEFAULT_VAR_DIR = Path("var")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(Exception):
    """The operator configuration cannot be used; ``str()`` is one line for the operator."""


class Settings(BaseSettings):
    """Everything an operator can set. Field names map to ``VISITMAIL_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix="VISITMAIL_", env_file=".env", extra="ignore", frozen=True
    )

    database_url: str = Field(
        default="",
        description="SQLAlchemy URL; empty means SQLite at var/visitmail.db",
    )
    var_dir: Path = Field(default=DEFAULT_VAR_DIR, description="state directory (embedded)")
    public_url: str | None = Field(
        default=None,
        description="the address users reach visitmail at (links in mail, e.g. unsubscribe)",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    master_key_file: Path | None = Field(
        default=None, description="key ring file; default var/master.key"
    )
    master_keys: SecretStr | None = Field(
        default=None,
        description="key ring inline: 'id:base64key' entries separated by commas, newest last",
    )
    smtp_allowed_networks: Annotated[list[IPNetwork], NoDecode] = Field(
        default_factory=list,
        description="CIDR networks SMTP hosts and proxies may resolve to besides public ones",
    )
    dns_nameservers: Annotated[list[tuple[str, int]], NoDecode] = Field(
        default_factory=list,
        description="DNS servers for the sender-domain check, 'ip' or 'ip:port' separated by "
        "commas ('[::1]:53' for IPv6); empty: the system's",
    )
    dns_timeout_seconds: float = Field(
        default=4.0, gt=0, le=30, description="one DNS query of the sender-domain check"
    )
    allow_plaintext_auth: bool = Field(
        default=False, description="allow sending SMTP passwords over unencrypted connections"
    )
    oauth_microsoft_authority: str = Field(
        default="https://login.microsoftonline.com",
        description="Microsoft identity platform: <authority>/<tenant>/oauth2/v2.0/token",
    )
    oauth_google_token_url: str = Field(
        default="https://oauth2.googleapis.com/token", description="Google's token endpoint"
    )
    oauth_google_authorization_url: str = Field(
        default="https://accounts.google.com/o/oauth2/v2/auth",
        description="Google's sign-in page for Connect (the authorization endpoint)",
    )
    dev_inbox_port: int = Field(default=2525, ge=1, le=65535, description="serve --dev-inbox")
    worker_concurrency: int = Field(default=20, ge=1, le=1000, description="SMTP conversations")
    worker_batch: int = Field(default=100, ge=1, le=5000, description="messages per claim")
    worker_lease_seconds: float = Field(default=300, gt=0, description="claim lease")
    worker_poll_seconds: float = Field(default=1.0, gt=0, description="fallback polling")
    shutdown_grace_seconds: float = Field(
        default=25,
        ge=0,
        le=3600,
        description="on SIGTERM/SIGINT: time SMTP conversations in flight get to finish",
    )
    retry_max_age_hours: float = Field(default=48, gt=0, description="then a message expires")
    pause_after_failures: int = Field(default=5, ge=1, description="server failures in a row")
    retention_days: float = Field(default=30, gt=0, description="finished messages are kept")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["console", "json"] = "console"
    secure_cookies: bool = Field(default=False, description="mark cookies Secure (behind HTTPS)")
    session_hours: int = Field(default=12, ge=1, le=24 * 30)
    max_body_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    login_max_failures: int = Field(default=10, ge=1)
    login_window_seconds: int = Field(default=900, ge=1)

    @field_validator("smtp_allowed_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("dns_nameservers", mode="before")
    @classmethod
    def _parse_nameservers(cls, value: object) -> object:
        if isinstance(value, str):
            return [parse_nameserver(part) for part in value.split(",") if part.strip()]
        return value

    @field_validator("public_url")
    @classmethod
    def _plain_http_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or not value.isascii()
            or not value.isprintable()
            or parts.query
            or parts.fragment
        ):
            raise ValueError("must be a plain http(s) URL such as https://visitmail.example.com")
        return value.strip().rstrip("/")

    @field_validator(
        "oauth_microsoft_authority", "oauth_google_token_url", "oauth_google_authorization_url"
    )
    @classmethod
    def _endpoint_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or not value.isascii()
            or not value.strip().isprintable()
            or parts.query
            or parts.fragment
        ):
            raise ValueError("must be a plain http(s) URL")
        return value.strip().rstrip("/")

    @property
    def oauth_endpoints(self) -> OAuthEndpoints:
        return OAuthEndpoints(
            microsoft_authority=self.oauth_microsoft_authority,
            google_token_url=self.oauth_google_token_url,
        )

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must start with sqlite or postgresql")
        return value

    @property
    def effective_database_url(self) -> str:
        """The async SQLAlchemy URL actually used (drivers aiosqlite / asyncpg)."""
        url = self.database_url or f"sqlite:///{self.var_dir / 'visitmail.db'}"
        return to_async_url(url)

    @property
    def effective_key_file(self) -> Path:
        return self.master_key_file or self.var_dir / "master.key"


def parse_nameserver(text: str) -> tuple[str, int]:
    """``192.0.2.53``, ``192.0.2.53:5353``, ``::1``, ``[::1]:5353`` → (address, port)."""
    raw = text.strip()
    host, port = raw, "53"
    if raw.startswith("["):
        host, _, rest = raw[1:].partition("]")
        port = rest.removeprefix(":") or "53"
    elif raw.count(":") == 1:
        host, port = raw.split(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{raw!r} is not an IP address (optionally with :port)") from None
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{raw!r} has no valid port")
    return str(address), int(port)


def to_async_url(url: str) -> str:
    """Map ``sqlite://`` / ``postgresql://`` URLs to their async drivers."""
    if url.startswith("sqlite:"):
        return "sqlite+aiosqlite:" + url[len("sqlite:") :]
    if url.startswith("postgresql://") or url.startswith("postgresql+psycopg"):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    return url


def load_settings() -> Settings:
    """Read the environment; raise :class:`ConfigError` with one line per the first problem."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "VISITMAIL_" + "_".join(str(p) for p in first["loc"][:1]).upper()
        raise ConfigError(f"{name}: {first['msg']}") from None
    except SettingsError as exc:
        # pydantic-settings names the field in its message: 'error parsing value for field "x"'
        field = str(exc).split('"')[1] if '"' in str(exc) else "settings"
        raise ConfigError(f"VISITMAIL_{field.upper()}: cannot be parsed") from None
