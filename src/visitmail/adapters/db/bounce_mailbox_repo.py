"""The bounce mailbox in SQL (``services.bounce_mailbox_ports``)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from visitmail.adapters.db.tables import BounceMailboxRow
from visitmail.domain.bounce_mailbox import BounceMailbox, MailboxCursor, MailboxState
from visitmail.domain.smtp_settings import Security
from visitmail.services.bounce_mailbox_ports import StoredBounceMailbox

B = BounceMailboxRow


def _stored(row: BounceMailboxRow) -> StoredBounceMailbox:
    cursor = (
        MailboxCursor(row.uidvalidity, row.last_uid)
        if row.uidvalidity is not None and row.last_uid is not None
        else None
    )
    return StoredBounceMailbox(
        settings=BounceMailbox(
            host=row.host,
            port=row.port,
            security=Security(row.security),
            username=row.username,
            folder=row.folder,
            enabled=row.enabled,
        ),
        password_sealed=row.password_enc,
        state=MailboxState(cursor, row.last_polled_at, row.last_error, row.reports_found),
        updated_at=row.updated_at,
    )


class SqlBounceMailboxes:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def get(self, organization_id: uuid.UUID) -> StoredBounceMailbox | None:
        row = await self._s.get(B, organization_id)
        return _stored(row) if row is not None else None

    async def put(
        self,
        organization_id: uuid.UUID,
        settings: BounceMailbox,
        password_sealed: str | None,
        now: datetime,
    ) -> None:
        row = await self._s.get(B, organization_id, with_for_update=True)
        if row is None:
            row = B(organization_id=organization_id, created_at=now, reports_found=0)
            self._s.add(row)
        elif (row.host, row.username, row.folder) != (
            settings.host,
            settings.username,
            settings.folder,
        ):
            row.uidvalidity = row.last_uid = None  # another mailbox: start afresh
        row.host = settings.host
        row.port = settings.port
        row.security = settings.security.value
        row.username = settings.username
        row.password_enc = password_sealed
        row.folder = settings.folder
        row.enabled = settings.enabled
        row.updated_at = now
        row.last_error = None
        await self._s.flush()

    async def delete(self, organization_id: uuid.UUID) -> bool:
        result = await self._s.execute(delete(B).where(B.organization_id == organization_id))
        return bool(getattr(result, "rowcount", 0))

    async def due(self, now: datetime, polled_before: datetime, limit: int) -> list[uuid.UUID]:
        rows = await self._s.scalars(
            select(B.organization_id)
            .where(
                B.enabled.is_(True),
                or_(B.last_polled_at.is_(None), B.last_polled_at < polled_before),
                or_(B.poll_lease_until.is_(None), B.poll_lease_until < now),
            )
            .order_by(B.last_polled_at.asc().nulls_first())
            .limit(limit)
        )
        return list(rows)

    async def claim(self, organization_id: uuid.UUID, now: datetime, until: datetime) -> bool:
        result = await self._s.execute(
            update(B)
            .where(
                B.organization_id == organization_id,
                or_(B.poll_lease_until.is_(None), B.poll_lease_until < now),
            )
            .values(poll_lease_until=until)
        )
        return bool(getattr(result, "rowcount", 0))

    async def finish(
        self,
        organization_id: uuid.UUID,
        *,
        cursor: MailboxCursor | None,
        polled_at: datetime,
        error: str | None,
        found: int,
    ) -> None:
        values: dict[str, object] = {
            "last_polled_at": polled_at,
            "last_error": error,
            "reports_found": B.reports_found + found,
            "poll_lease_until": None,
        }
        if cursor is not None:
            values["uidvalidity"] = cursor.uidvalidity
            values["last_uid"] = cursor.last_uid
        await self._s.execute(
            update(B).where(B.organization_id == organization_id).values(**values)
        )

    async def organizations_with_password(self) -> list[uuid.UUID]:
        rows = await self._s.scalars(select(B.organization_id).where(B.password_enc.is_not(None)))
        return list(rows)

    async def sealed_passwords(self, organization_id: uuid.UUID) -> str | None:
        sealed: str | None = await self._s.scalar(
            select(B.password_enc).where(B.organization_id == organization_id)
        )
        return sealed

    async def swap_password(self, organization_id: uuid.UUID, old: str, new: str) -> bool:
        result = await self._s.execute(
            update(B)
            .where(B.organization_id == organization_id, B.password_enc == old)
            .values(password_enc=new)
        )
        return bool(getattr(result, "rowcount", 0))
