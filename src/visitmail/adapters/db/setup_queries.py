"""The dashboard's probes (:class:`~visitmail.services.setup_checklist.SetupState`).

Each probe is one query bounded by an index and ``LIMIT 1`` (or a primary key), so the
dashboard costs the same for a new organization and for one with years of history:

- smtp: the settings row by primary key, with an ``EXISTS`` over the audit log's
  ``(organization_id, at)`` index from the settings' ``updated_at`` on;
- event, template: ``ix_events_org_status`` / ``ix_follow_up_templates_org_event``;
- mapping: the active revision through ``ix_mapping_revisions_org_active``;
- first export: notifications and webhooks have idempotency keys starting with
  ``report:`` (``domain.mapping_eval``), so a range on the unique
  ``(organization_id, idempotency_key)`` index finds one without reading other mail;
- recent problems: ``ix_outbox_org_status`` for ``deferred`` and ``failed`` only (those
  rows are bounded by the backlog and the outbox's retention).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from visitmail.adapters.db.health_repo import SqlHealth
from visitmail.adapters.db.tables import (
    AuditRow,
    EventRow,
    FollowUpTemplateRow,
    MappingRevisionRow,
    OutboxMessageRow,
    SmtpSettingsRow,
)
from visitmail.domain.outbox import MessageStatus
from visitmail.services.outbox_ports import ServerHealth
from visitmail.services.setup_checklist import SmtpState
from visitmail.services.smtp_config import ACTION_TEST_PASSED

# Keys of messages a report's trigger queued: "report:<id>:rule:…" (mapping_eval.key).
_REPORT_KEYS_FROM = "report:"
_REPORT_KEYS_TO = "report;"  # the next character after ":"


class SqlSetupState:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def smtp(self, organization_id: uuid.UUID) -> SmtpState:
        s = SmtpSettingsRow
        tested = exists().where(
            AuditRow.organization_id == organization_id,
            AuditRow.at >= s.updated_at,
            AuditRow.action == ACTION_TEST_PASSED,
        )
        row = (
            await self._s.execute(
                select(s.organization_id, tested.label("tested")).where(
                    s.organization_id == organization_id
                )
            )
        ).first()
        if row is None:
            return SmtpState(configured=False, tested=False)
        return SmtpState(configured=True, tested=bool(row.tested))

    async def first_event(self, organization_id: uuid.UUID) -> uuid.UUID | None:
        return await self._s.scalar(
            select(EventRow.id).where(EventRow.organization_id == organization_id).limit(1)
        )

    async def has_template(self, organization_id: uuid.UUID) -> bool:
        found = await self._s.scalar(
            select(FollowUpTemplateRow.id)
            .where(FollowUpTemplateRow.organization_id == organization_id)
            .limit(1)
        )
        return found is not None

    async def active_rules(self, organization_id: uuid.UUID) -> int:
        m = MappingRevisionRow
        document = await self._s.scalar(
            select(m.document).where(m.organization_id == organization_id, m.active).limit(1)
        )
        rules = document.get("rules") if isinstance(document, dict) else None
        if not isinstance(rules, list):
            return 0
        return sum(1 for r in rules if isinstance(r, dict) and r.get("enabled", True) is not False)

    async def has_notification(self, organization_id: uuid.UUID) -> bool:
        o = OutboxMessageRow
        found = await self._s.scalar(
            select(o.id)
            .where(
                o.organization_id == organization_id,
                o.idempotency_key >= _REPORT_KEYS_FROM,
                o.idempotency_key < _REPORT_KEYS_TO,
            )
            .limit(1)
        )
        return found is not None

    async def health(self, organization_id: uuid.UUID) -> ServerHealth | None:
        return await SqlHealth(self._s).get(organization_id)

    async def recent_problems(
        self, organization_id: uuid.UUID, since: datetime
    ) -> Mapping[MessageStatus, int]:
        o = OutboxMessageRow
        rows = await self._s.execute(
            select(o.status, func.count())
            .where(
                o.organization_id == organization_id,
                o.status.in_([MessageStatus.DEFERRED.value, MessageStatus.FAILED.value]),
                o.updated_at >= since,
            )
            .group_by(o.status)
        )
        return {MessageStatus(status): int(n) for status, n in rows.all()}
