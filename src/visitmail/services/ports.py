"""The ports the services need. Adapters implement them (``adapters/db``, ``adapters/crypto``);
tests may hand in fakes. Every repository method that reads tenant data takes the
organization id and never returns another organization's rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import TracebackType
from typing import Protocol, Self
from uuid import UUID

from visitmail.domain.identity import ApiToken, Organization, PasswordState, User
from visitmail.domain.oauth import OAuthSettings
from visitmail.domain.roles import Role
from visitmail.domain.smtp_settings import SmtpSettings
from visitmail.services.outbox_ports import HealthRepository


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str: ...

    def verify(self, stored_hash: str, password: str) -> bool:
        """True if ``password`` matches; never raises for a mismatch."""
        ...

    def needs_rehash(self, stored_hash: str) -> bool: ...


class OrganizationRepository(Protocol):
    async def add(self, name: str, now: datetime) -> Organization: ...

    async def get(self, organization_id: UUID) -> Organization | None: ...

    async def count(self) -> int: ...

    async def update(
        self,
        organization_id: UUID,
        *,
        name: str | None = None,
        require_follow_up_consent: bool | None = None,
    ) -> Organization | None: ...


class UserRepository(Protocol):
    async def add(
        self,
        organization_id: UUID,
        *,
        email: str,
        display_name: str,
        role: Role,
        password_hash: str,
        now: datetime,
    ) -> User: ...

    async def get(self, organization_id: UUID, user_id: UUID) -> User | None: ...

    async def list(self, organization_id: UUID) -> Sequence[User]: ...

    async def email_taken(self, email: str) -> bool: ...

    async def find_for_login(self, email: str) -> tuple[User, str] | None:
        """The user with this email (any organization) and the stored password hash."""
        ...

    async def update(
        self,
        organization_id: UUID,
        user_id: UUID,
        *,
        role: Role | None = None,
        disabled: bool | None = None,
        display_name: str | None = None,
        password_hash: str | None = None,
        password_state: PasswordState | None = None,
        now: datetime,
    ) -> User | None: ...

    async def count_admins(self, organization_id: UUID) -> int:
        """Enabled admins of the organization."""
        ...


class TokenRepository(Protocol):
    async def add(
        self,
        organization_id: UUID,
        *,
        user_id: UUID,
        name: str,
        prefix: str,
        secret_hash: str,
        now: datetime,
    ) -> ApiToken: ...

    async def find_active(self, secret_hash: str) -> tuple[ApiToken, User] | None:
        """The unrevoked token with this hash and its (enabled) user."""
        ...

    async def list(
        self, organization_id: UUID, user_id: UUID | None = None
    ) -> Sequence[ApiToken]: ...

    async def get(self, organization_id: UUID, token_id: UUID) -> ApiToken | None: ...

    async def revoke(self, organization_id: UUID, token_id: UUID, now: datetime) -> None: ...

    async def revoke_for_user(self, organization_id: UUID, user_id: UUID, now: datetime) -> int:
        """Revoke every active token of the user; how many were revoked."""
        ...

    async def touch(self, token_id: UUID, now: datetime) -> None: ...


class SessionRepository(Protocol):
    async def add(
        self,
        organization_id: UUID,
        *,
        user_id: UUID,
        secret_hash: str,
        csrf_token: str,
        now: datetime,
        expires_at: datetime,
    ) -> None: ...

    async def find_active(self, secret_hash: str, now: datetime) -> tuple[User, str] | None:
        """The session's (enabled) user and its CSRF token, if unexpired."""
        ...

    async def delete(self, secret_hash: str) -> None: ...

    async def delete_for_user(self, organization_id: UUID, user_id: UUID) -> int:
        """End every web session of the user; how many were ended."""
        ...


class LoginFailureRepository(Protocol):
    async def record(self, key: str, now: datetime) -> None: ...

    async def count_since(self, key: str, since: datetime) -> int: ...

    async def oldest_since(self, key: str, since: datetime) -> datetime | None: ...

    async def clear(self, key: str) -> None: ...


class AuditLog(Protocol):
    async def record(
        self,
        organization_id: UUID,
        *,
        actor_id: UUID | None,
        action: str,
        target: str,
        fields: Sequence[str],
        now: datetime,
    ) -> None:
        """Who did what to which fields; never the values."""
        ...


class UnitOfWork(Protocol):
    """One database transaction and the repositories bound to it."""

    organizations: OrganizationRepository
    users: UserRepository
    tokens: TokenRepository
    sessions: SessionRepository
    login_failures: LoginFailureRepository
    audit: AuditLog
    smtp_settings: SmtpSettingsRepository
    health: HealthRepository

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Roll back if the block raised and was not committed."""
        ...

    async def commit(self) -> None: ...


# --- SMTP settings (issue 3) -------------------------------------------------------------


class SmtpSecretField(StrEnum):
    """The write-only secrets of an organization's SMTP settings, named by their API path."""

    PASSWORD = "password"  # noqa: S105 (a field name)
    PROXY_PASSWORD = "proxy.password"  # noqa: S105
    CLIENT_KEY = "tls.client_key_pem"
    # OAuth2 (issue 11): stored in the smtp_oauth_credentials row
    OAUTH_CLIENT_SECRET = "oauth.client_secret"  # noqa: S105
    OAUTH_PRIVATE_KEY = "oauth.private_key_pem"
    OAUTH_SERVICE_ACCOUNT_KEY = "oauth.service_account_key"
    OAUTH_REFRESH_TOKEN = "oauth.refresh_token"  # noqa: S105
    #: the cached access token: written by the token service only, never by a request
    OAUTH_ACCESS_TOKEN = "oauth.access_token"  # noqa: S105

    @property
    def sealed_as(self) -> str:
        """The field label bound into the ciphertext's associated data."""
        return f"smtp.{self.value}"

    @property
    def is_oauth(self) -> bool:
        return self.value.startswith("oauth.")


SMTP_CONNECTION_SECRETS = (
    SmtpSecretField.PASSWORD,
    SmtpSecretField.PROXY_PASSWORD,
    SmtpSecretField.CLIENT_KEY,
)
"""The secrets a connection itself uses (the OAuth ones only reach the token service)."""


@dataclass(frozen=True, slots=True)
class StoredOAuth:
    """The OAuth row as the token service sees it: settings, sealed secrets, token state."""

    settings: OAuthSettings
    sealed: Mapping[SmtpSecretField, str]
    access_token_expires_at: datetime | None
    granted_scopes: tuple[str, ...] | None
    refreshed_at: datetime | None


class OAuthTokenRepository(Protocol):
    """The OAuth row's token half. ``get(lock=True)`` holds the row until the transaction
    ends (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's single writer serializes)."""

    async def get(self, organization_id: UUID, *, lock: bool = False) -> StoredOAuth | None: ...

    async def save_tokens(
        self,
        organization_id: UUID,
        *,
        access_sealed: str,
        expires_at: datetime,
        scopes: tuple[str, ...] | None,
        refresh_sealed: str | None,
        now: datetime,
    ) -> None:
        """Store a fetched access token; ``refresh_sealed`` (a rotated refresh token)
        replaces the stored one when not ``None``."""
        ...


@dataclass(frozen=True, slots=True)
class StoredSmtpSettings:
    settings: SmtpSettings
    sealed: Mapping[SmtpSecretField, str]  # secret-box tokens of the secrets that are set
    updated_at: datetime
    updated_by: UUID | None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    actor_id: UUID | None
    action: str
    target: str
    fields: Sequence[str]
    at: datetime


class SecretSealer(Protocol):
    """Authenticated encryption bound to (organization, field); see ``adapters/crypto``."""

    def seal(self, plaintext: str, *, organization_id: UUID, field: str) -> str: ...

    def open(self, token: str, *, organization_id: UUID, field: str) -> str:
        """The plaintext; raises a domain error (never holding secret data) if unreadable."""
        ...

    def needs_rotation(self, token: str) -> bool: ...


class SmtpSettingsRepository(Protocol):
    async def get(
        self, organization_id: UUID, *, for_update: bool = False
    ) -> StoredSmtpSettings | None: ...

    async def save(
        self,
        organization_id: UUID,
        settings: SmtpSettings,
        *,
        sealed: Mapping[SmtpSecretField, str | None],
        actor_id: UUID | None,
        now: datetime,
    ) -> None:
        """Insert or replace the non-secret settings. Only the secrets named in ``sealed``
        change (``None`` clears one); the others keep their stored value."""
        ...

    async def replace_sealed(
        self, organization_id: UUID, field: SmtpSecretField, *, old: str, new: str
    ) -> bool:
        """Swap one token if it still is ``old`` (key rotation); True if swapped."""
        ...

    async def organizations_with_secrets(self) -> Sequence[UUID]: ...

    async def history(self, organization_id: UUID, *, limit: int) -> Sequence[AuditEntry]:
        """The organization's SMTP-settings audit entries, newest first."""
        ...
