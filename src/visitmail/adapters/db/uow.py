"""The SQL unit of work: one ``AsyncSession`` (one transaction) and its repositories."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from visitmail.adapters.db.follow_up_repo import (
    SqlFollowUpSends,
    SqlFollowUpSources,
    SqlFollowUpTemplates,
    SqlSuppressions,
)
from visitmail.adapters.db.health_repo import SqlHealth, SqlRateLimiter
from visitmail.adapters.db.identity_repos import (
    SqlAuditLog,
    SqlLoginFailures,
    SqlOrganizations,
    SqlSessions,
    SqlTokens,
    SqlUsers,
)
from visitmail.adapters.db.mapping_repo import SqlMappings
from visitmail.adapters.db.outbox_repo import SqlOutbox
from visitmail.adapters.db.report_repos import SqlEvents, SqlMedia, SqlReports
from visitmail.adapters.db.smtp_repo import SqlSmtpSettings
from visitmail.adapters.db.webhook_repo import SqlWebhookSecrets
from visitmail.services.follow_up_ports import (
    FollowUpSendRepository,
    FollowUpSources,
    FollowUpTemplateRepository,
    SuppressionRepository,
)
from visitmail.services.notification_ports import MappingRepository
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
from visitmail.services.report_ports import (
    EventRepository,
    MediaRepository,
    ReportRepository,
)
from visitmail.services.webhook_ports import WebhookSecretRepository


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
    events: EventRepository
    media: MediaRepository
    reports: ReportRepository
    follow_up_templates: FollowUpTemplateRepository
    suppressions: SuppressionRepository
    follow_up_sends: FollowUpSendRepository
    follow_up_sources: FollowUpSources
    mappings: MappingRepository
    webhook_secrets: WebhookSecretRepository
    session: AsyncSession

    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        *,
        after_enqueue: Callable[[], None] | None = None,
    ) -> None:
        self._factory = factory
        self._after_enqueue = after_enqueue

    async def __aenter__(self) -> Self:
        self.session = self._factory()
        self.organizations = SqlOrganizations(self.session)
        self.users = SqlUsers(self.session)
        self.tokens = SqlTokens(self.session)
        self.sessions = SqlSessions(self.session)
        self.login_failures = SqlLoginFailures(self.session)
        self.audit = SqlAuditLog(self.session)
        self.smtp_settings = SqlSmtpSettings(self.session)
        self._outbox = SqlOutbox(self.session)
        self.outbox = self._outbox
        self.health = SqlHealth(self.session)
        self.rates = SqlRateLimiter(self.session)
        self.events = SqlEvents(self.session)
        self.media = SqlMedia(self.session)
        self.reports = SqlReports(self.session)
        self.follow_up_templates = SqlFollowUpTemplates(self.session)
        self.suppressions = SqlSuppressions(self.session)
        self.follow_up_sends = SqlFollowUpSends(self.session)
        self.follow_up_sources = SqlFollowUpSources(self.session)
        self.mappings = SqlMappings(self.session)
        self.webhook_secrets = SqlWebhookSecrets(self.session)
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
        if self._after_enqueue is not None and self._outbox.enqueued:
            self._outbox.enqueued = 0
            self._after_enqueue()  # the in-process workers claim now, not at their next poll
