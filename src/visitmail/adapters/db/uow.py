"""The SQL unit of work: one ``AsyncSession`` (one transaction) and its repositories.

A unit of work is a *writer* (the default) or ``read_only``: the runtime hands a read-only
one a session on the SQLite reader engine (see ``engine.py``), where any write fails, so
reads never queue behind writes. On PostgreSQL both use the same engine.

After a commit: if the transaction queued outbox messages, ``after_enqueue`` wakes the
in-process workers; if it revoked a token or changed a user, ``after_identity_change``
lets the process drop what it cached about principals.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from visitmail.adapters.db.bounce_mailbox_repo import SqlBounceMailboxes
from visitmail.adapters.db.delivery_event_repo import SqlDeliveryEvents
from visitmail.adapters.db.dkim_repo import SqlDkimKeys
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
from visitmail.adapters.db.oauth_connect_repo import SqlPendingConnects
from visitmail.adapters.db.outbox_repo import SqlOutbox
from visitmail.adapters.db.relay_webhook_repo import SqlRelayWebhooks
from visitmail.adapters.db.report_repos import SqlEvents, SqlMedia, SqlReports
from visitmail.adapters.db.smtp_repo import SqlOAuthTokens, SqlSmtpSettings
from visitmail.adapters.db.webhook_repo import SqlWebhookSecrets
from visitmail.services.bounce_mailbox_ports import BounceMailboxRepository
from visitmail.services.delivery_event_ports import DeliveryEventRepository
from visitmail.services.dkim_ports import DkimKeyRepository
from visitmail.services.follow_up_ports import (
    FollowUpSendRepository,
    FollowUpSources,
    FollowUpTemplateRepository,
    SuppressionRepository,
)
from visitmail.services.notification_ports import MappingRepository
from visitmail.services.oauth_connect import PendingConnectRepository
from visitmail.services.outbox_ports import HealthRepository, OutboxRepository, RateLimiter
from visitmail.services.ports import (
    AuditLog,
    LoginFailureRepository,
    OAuthTokenRepository,
    OrganizationRepository,
    SessionRepository,
    SmtpSettingsRepository,
    TokenRepository,
    UserRepository,
)
from visitmail.services.relay_webhook_ports import RelayWebhookRepository
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
    oauth_tokens: OAuthTokenRepository
    oauth_connects: PendingConnectRepository
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
    dkim_keys: DkimKeyRepository
    delivery_events: DeliveryEventRepository
    bounce_mailboxes: BounceMailboxRepository
    relay_webhooks: RelayWebhookRepository
    session: AsyncSession

    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        *,
        after_enqueue: Callable[[], None] | None = None,
        after_identity_change: Callable[[], None] | None = None,
        read_only: bool = False,
    ) -> None:
        self._factory = factory
        self._after_enqueue = after_enqueue
        self._after_identity_change = after_identity_change
        self.read_only = read_only

    async def __aenter__(self) -> Self:
        self.session = self._factory()
        self.organizations = SqlOrganizations(self.session)
        self._users = SqlUsers(self.session)
        self.users = self._users
        self._tokens = SqlTokens(self.session)
        self.tokens = self._tokens
        self.sessions = SqlSessions(self.session)
        self.login_failures = SqlLoginFailures(self.session)
        self.audit = SqlAuditLog(self.session)
        self.smtp_settings = SqlSmtpSettings(self.session)
        self.oauth_tokens = SqlOAuthTokens(self.session)
        self.oauth_connects = SqlPendingConnects(self.session)
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
        self.dkim_keys = SqlDkimKeys(self.session)
        self.delivery_events = SqlDeliveryEvents(self.session)
        self.bounce_mailboxes = SqlBounceMailboxes(self.session)
        self.relay_webhooks = SqlRelayWebhooks(self.session)
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
        if self._users.changed or self._tokens.changed:
            self._users.changed = self._tokens.changed = False
            if self._after_identity_change is not None:
                self._after_identity_change()  # a revoked token is refused from now on
