"""Read-only queries for the Prometheus scrape (``/metrics``) that no repository needs:
numbers across every organization, never an organization's data."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from visitmail.adapters.db.tables import DeliveryEventRow, OutboxMessageRow, SmtpHealthRow


async def paused_organizations(session: AsyncSession) -> int:
    """How many organizations' queues are paused because their server kept failing."""
    query = (
        select(func.count()).select_from(SmtpHealthRow).where(SmtpHealthRow.paused_at.is_not(None))
    )
    return int(await session.scalar(query) or 0)


async def delivery_events_since(
    session: AsyncSession, since: datetime
) -> list[tuple[uuid.UUID, str, int]]:
    """Bounces, complaints and delays received since ``since``, per organization and kind
    (bounces as ``bounced_hard`` / ``bounced_soft``)."""
    e = DeliveryEventRow
    rows = await session.execute(
        select(e.organization_id, e.kind, e.severity, func.count())
        .where(e.received_at >= since)
        .group_by(e.organization_id, e.kind, e.severity)
    )
    return [
        (org, f"{kind}_{severity}" if severity else kind, int(n)) for org, kind, severity, n in rows
    ]


async def messages_sent(
    session: AsyncSession, organizations: list[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """Messages the server accepted that the outbox still holds (the retention period), for
    each of ``organizations`` (an index-only count on ``ix_outbox_org_status`` each)."""
    m = OutboxMessageRow
    if not organizations:
        return {}
    rows = await session.execute(
        select(m.organization_id, func.count())
        .where(m.organization_id.in_(organizations), m.status == "sent")
        .group_by(m.organization_id)
    )
    return {org: int(n) for org, n in rows}
