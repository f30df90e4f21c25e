"""SQL repository of notification mapping revisions. Every query filters on
``organization_id``.

Writers lock the organization's row first (``SELECT … FOR UPDATE``; SQLite serializes
writers anyway), so two saves cannot take the same number and at most one revision is
active; the unique ``(organization_id, number)`` constraint backs that up.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from visitmail.adapters.db.tables import MappingRevisionRow, OrganizationRow
from visitmail.domain.ids import new_id
from visitmail.services.notification_ports import StoredMapping

R = MappingRevisionRow


def _stored(row: MappingRevisionRow) -> StoredMapping:
    return StoredMapping(
        id=row.id,
        organization_id=row.organization_id,
        number=row.number,
        document=dict(row.document),
        active=row.active,
        created_at=row.created_at,
        created_by=row.created_by,
        activated_at=row.activated_at,
    )


class SqlMappings:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def active(
        self, organization_id: uuid.UUID, *, for_update: bool = False
    ) -> StoredMapping | None:
        if for_update:
            await self._lock(organization_id)
        row = await self._s.scalar(
            select(R)
            .where(R.organization_id == organization_id, R.active.is_(True))
            .order_by(R.number.desc())
            .limit(1)
        )
        return _stored(row) if row is not None else None

    async def get(self, organization_id: uuid.UUID, revision_id: uuid.UUID) -> StoredMapping | None:
        row = await self._s.scalar(
            select(R).where(R.organization_id == organization_id, R.id == revision_id)
        )
        return _stored(row) if row is not None else None

    async def list(
        self, organization_id: uuid.UUID, *, limit: int = 100, offset: int = 0
    ) -> Sequence[StoredMapping]:
        rows = await self._s.scalars(
            select(R)
            .where(R.organization_id == organization_id)
            .order_by(R.number.desc())
            .limit(limit)
            .offset(offset)
        )
        return [_stored(row) for row in rows]

    async def _lock(self, organization_id: uuid.UUID) -> None:
        await self._s.execute(
            select(OrganizationRow.id)
            .where(OrganizationRow.id == organization_id)
            .with_for_update()
        )

    async def _deactivate_all(self, organization_id: uuid.UUID) -> None:
        await self._s.execute(
            update(R)
            .where(R.organization_id == organization_id, R.active.is_(True))
            .values(active=False)
        )

    async def add(
        self,
        organization_id: uuid.UUID,
        document: Mapping[str, Any],
        *,
        actor_id: uuid.UUID | None,
        now: datetime,
    ) -> StoredMapping:
        await self._lock(organization_id)
        highest = await self._s.scalar(
            select(func.max(R.number)).where(R.organization_id == organization_id)
        )
        await self._deactivate_all(organization_id)
        row = R(
            id=new_id(),
            organization_id=organization_id,
            number=int(highest or 0) + 1,
            document=dict(document),
            active=True,
            created_at=now,
            created_by=actor_id,
            activated_at=now,
        )
        self._s.add(row)
        await self._s.flush()
        return _stored(row)

    async def activate(
        self, organization_id: uuid.UUID, revision_id: uuid.UUID, *, now: datetime
    ) -> StoredMapping | None:
        await self._lock(organization_id)
        row = await self._s.scalar(
            select(R).where(R.organization_id == organization_id, R.id == revision_id)
        )
        if row is None:
            return None
        if row.active:
            return _stored(row)
        await self._deactivate_all(organization_id)
        await self._s.execute(update(R).where(R.id == row.id).values(active=True, activated_at=now))
        await self._s.refresh(row)
        return _stored(row)
