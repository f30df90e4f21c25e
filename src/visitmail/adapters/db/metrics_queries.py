"""Read-only queries for the Prometheus scrape (``/metrics``) that no repository needs:
numbers across every organization, never an organization's data."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from visitmail.adapters.db.tables import SmtpHealthRow


async def paused_organizations(session: AsyncSession) -> int:
    """How many organizations' queues are paused because their server kept failing."""
    query = (
        select(func.count()).select_from(SmtpHealthRow).where(SmtpHealthRow.paused_at.is_not(None))
    )
    return int(await session.scalar(query) or 0)
