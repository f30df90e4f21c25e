"""The ports the services need. Adapters implement them (``adapters/db``, ``adapters/crypto``);
tests may hand in fakes. Every repository method that reads tenant data takes the
organization id and never returns another organization's rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self
from uuid import UUID

from visitmail.domain.identity import ApiToken, Organization, User
from visitmail.domain.roles import Role


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
