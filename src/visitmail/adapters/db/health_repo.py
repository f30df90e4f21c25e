"""Per-organization server health (consecutive failures, pause, probe) and the shared rate
budget (token bucket per minute, windows per hour and day) in the database, so every
worker on every machine sees the same numbers."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from visitmail.adapters.db.tables import RateBucketRow, SmtpHealthRow
from visitmail.adapters.db.upsert import insert_ignore
from visitmail.domain.smtp_settings import Limits
from visitmail.services.outbox_ports import RecipientGrant, ServerHealth

H = SmtpHealthRow
SLOWDOWN_FOR = timedelta(minutes=5)
MIN_SLOWDOWN = 0.125


def _health(row: SmtpHealthRow) -> ServerHealth:
    return ServerHealth(
        organization_id=row.organization_id,
        consecutive_failures=row.consecutive_failures,
        paused_at=row.paused_at,
        paused_reason=row.paused_reason,
        next_probe_at=row.next_probe_at,
        last_success_at=row.last_success_at,
        last_failure_at=row.last_failure_at,
        last_failure=row.last_failure,
    )


class SqlHealth:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def _row(self, organization_id: uuid.UUID) -> SmtpHealthRow:
        await insert_ignore(
            self._s, H, {"organization_id": organization_id, "consecutive_failures": 0}
        )
        row = await self._s.scalar(
            select(H).where(H.organization_id == organization_id).with_for_update()
        )
        assert row is not None
        return row

    async def get(self, organization_id: uuid.UUID) -> ServerHealth | None:
        row = await self._s.scalar(select(H).where(H.organization_id == organization_id))
        return _health(row) if row else None

    async def record_successes(self, organization_ids: Sequence[uuid.UUID], now: datetime) -> None:
        if not organization_ids:
            return
        # Only rows that need it: a healthy server costs no write per batch beyond this.
        await self._s.execute(
            update(H)
            .where(H.organization_id.in_(organization_ids), H.consecutive_failures > 0)
            .values(consecutive_failures=0, last_success_at=now)
            .execution_options(synchronize_session=False)
        )
        for org in organization_ids:
            await insert_ignore(
                self._s,
                H,
                {"organization_id": org, "consecutive_failures": 0, "last_success_at": now},
            )

    async def record_failure(
        self,
        organization_id: uuid.UUID,
        reason: str,
        now: datetime,
        *,
        pause_after: int,
        probe_in: timedelta,
    ) -> ServerHealth:
        row = await self._row(organization_id)
        row.consecutive_failures += 1
        row.last_failure_at = now
        row.last_failure = reason[:2000]
        if row.paused_at is None and row.consecutive_failures >= pause_after:
            row.paused_at = now
            row.paused_reason = (
                f"paused after {row.consecutive_failures} failed connections in a row: {reason}"
            )[:2000]
            row.next_probe_at = now + probe_in
        await self._s.flush()
        return _health(row)

    async def due_probes(self, now: datetime) -> list[uuid.UUID]:
        return list(
            await self._s.scalars(
                select(H.organization_id).where(H.paused_at.is_not(None), H.next_probe_at <= now)
            )
        )

    async def probe_failed(
        self, organization_id: uuid.UUID, reason: str, next_at: datetime
    ) -> None:
        await self._s.execute(
            update(H)
            .where(H.organization_id == organization_id)
            .values(next_probe_at=next_at, last_failure=reason[:2000])
            .execution_options(synchronize_session=False)
        )

    async def resume(self, organization_id: uuid.UUID, now: datetime) -> None:
        await self._s.execute(
            update(H)
            .where(H.organization_id == organization_id)
            .values(
                paused_at=None,
                paused_reason=None,
                next_probe_at=None,
                consecutive_failures=0,
                last_success_at=now,
            )
            .execution_options(synchronize_session=False)
        )

    async def schedule_probe(self, organization_id: uuid.UUID, now: datetime) -> None:
        await self._s.execute(
            update(H)
            .where(H.organization_id == organization_id, H.paused_at.is_not(None))
            .values(next_probe_at=now)
            .execution_options(synchronize_session=False)
        )


class SqlRateLimiter:
    """Token bucket for ``per_minute`` (burst = the minute's budget), fixed windows for
    ``per_hour`` / ``per_day``; ``recipients_per_day`` counts recipients in the same day
    window as ``per_day``. A throttling reply halves the refill rate for 5 minutes. Every
    method locks the organization's row, so workers on any machine share one budget."""

    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def _row(
        self, organization_id: uuid.UUID, limits: Limits, now: datetime
    ) -> RateBucketRow:
        await insert_ignore(
            self._s,
            RateBucketRow,
            {
                "organization_id": organization_id,
                "tokens": float(limits.per_minute or 0),
                "refilled_at": now,
                "slowdown": 1.0,
                "hour_start": now,
                "hour_count": 0,
                "day_start": now,
                "day_count": 0,
                "day_recipients": 0,
            },
        )
        row = await self._s.scalar(
            select(RateBucketRow)
            .where(RateBucketRow.organization_id == organization_id)
            .with_for_update()
        )
        assert row is not None
        return row

    async def take(
        self, organization_id: uuid.UUID, limits: Limits, want: int, now: datetime
    ) -> int:
        if not limits.counts_messages:
            return want
        row = await self._row(organization_id, limits, now)
        if row.slowdown_until is not None and row.slowdown_until <= now:
            row.slowdown, row.slowdown_until = 1.0, None
        grant = want
        if limits.per_minute:
            elapsed = max(0.0, (now - row.refilled_at).total_seconds())
            rate = limits.per_minute / 60.0 * row.slowdown
            row.tokens = min(float(limits.per_minute), row.tokens + elapsed * rate)
            row.refilled_at = now
            grant = min(grant, math.floor(row.tokens))
        if limits.per_hour:
            if now - row.hour_start >= timedelta(hours=1):
                row.hour_start, row.hour_count = now, 0
            grant = min(grant, limits.per_hour - row.hour_count)
        _roll_day(row, now)
        if limits.per_day:
            grant = min(grant, limits.per_day - row.day_count)
        grant = max(0, grant)
        if limits.per_minute:
            row.tokens -= grant
        row.hour_count += grant
        row.day_count += grant
        await self._s.flush()
        return grant

    async def take_recipients(
        self, organization_id: uuid.UUID, limits: Limits, want: int, now: datetime
    ) -> RecipientGrant:
        if not limits.recipients_per_day:
            return RecipientGrant(want, now)
        row = await self._row(organization_id, limits, now)
        _roll_day(row, now)
        grant = max(0, min(want, limits.recipients_per_day - row.day_recipients))
        row.day_recipients += grant
        await self._s.flush()
        return RecipientGrant(grant, row.day_start + timedelta(days=1))

    async def give_back(
        self, organization_id: uuid.UUID, limits: Limits, unused: int, *, recipients: int = 0
    ) -> None:
        unused = unused if limits.counts_messages else 0
        recipients = recipients if limits.recipients_per_day else 0
        if unused <= 0 and recipients <= 0:
            return
        row = await self._s.scalar(
            select(RateBucketRow)
            .where(RateBucketRow.organization_id == organization_id)
            .with_for_update()
        )
        if row is None:
            return
        if unused > 0:
            if limits.per_minute:
                row.tokens = min(float(limits.per_minute), row.tokens + unused)
            row.hour_count = max(0, row.hour_count - unused)
            row.day_count = max(0, row.day_count - unused)
        if recipients > 0:
            row.day_recipients = max(0, row.day_recipients - recipients)
        await self._s.flush()

    async def slow_down(self, organization_id: uuid.UUID, now: datetime) -> None:
        row = await self._s.scalar(
            select(RateBucketRow)
            .where(RateBucketRow.organization_id == organization_id)
            .with_for_update()
        )
        if row is None:
            return
        row.slowdown = max(MIN_SLOWDOWN, row.slowdown / 2)
        row.slowdown_until = now + SLOWDOWN_FOR
        await self._s.flush()


def _roll_day(row: RateBucketRow, now: datetime) -> None:
    """Start a new day window (messages and recipients) once the last one is over."""
    if now - row.day_start >= timedelta(days=1):
        row.day_start, row.day_count, row.day_recipients = now, 0, 0
