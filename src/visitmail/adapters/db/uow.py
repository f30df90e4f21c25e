"""The SQL unit of work: one ``AsyncSession`` (one transaction) and its repositories."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from visitmail.adapters.db.health_repo import SqlHealth, SqlRateLimiter
from visitmail.adapters.db.identity_repos import (
    SqlAuditLog,
    SqlLoginFailures,
    SqlOrganizations,
    SqlSessions,
    SqlTokens,
    SqlUsers,
)
from visitmail.adapters.db.outbox_repo import SqlOutbox
from visitmail.adapters.db.smtp_repo import SqlSmtpSettings
from visitmail.services.outbox_ports import HealthRepository, OutboxRepository, RateLimiter
from visitmail.services.ports import (
    AuditLog,
    LoginFailureRepository,
    OrganizationRepository,
    SessionRepository,
    SmtpSettingsRepository,
    TokenRepository,
    UserRepository,
)


class SqlUnitOfWork:
    """``async with uow: ...; await uow.commit()``; leaving the block without commit rolls back."""

    organizations: OrganizationRepository
    users: UserRepository
    tokens: TokenRepository
    sessions: SessionRepository
    login_failures: LoginFailureRepository
    audit: AuditLog
    smtp_settings: SmtpSettingsRepository
    outbox: OutboxRepository
    health: HealthRepository
    rates: RateLimiter
    session: AsyncSession

    def __init__(self, factory: async_sessionmaker[AsyncSession]) -> None:
        self._factory = factory

    async def __aenter__(self) -> Self:
        self.session = self._factory()
        self.organizations = SqlOrganizations(self.session)
        self.users = SqlUsers(self.session)
        self.tokens = SqlTokens(self.session)
        self.sessions = SqlSessions(self.session)
        self.login_failures = SqlLoginFailures(self.session)
        self.audit = SqlAuditLog(self.session)
        self.smtp_settings = SqlSmtpSettings(self.session)
        self.outbox = SqlOutbox(self.session)
        self.health = SqlHealth(self.session)
        self.rates = SqlRateLimiter(self.session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.session.rollback()
        finally:
            await self.session.close()

    async def commit(self) -> None:
        await self.session.commit()
