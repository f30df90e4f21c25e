"""The stored bytes of one outbox message, for the message detail
(:class:`~visitmail.services.outbox_detail.MessageContents`); by primary key, scoped by
organization."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from visitmail.adapters.db.tables import OutboxMessageRow
from visitmail.domain.outbox import MessageKind
from visitmail.services.outbox_detail import StoredContent


class SqlMessageContents:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def content(
        self, organization_id: uuid.UUID, message_id: uuid.UUID
    ) -> StoredContent | None:
        m = OutboxMessageRow
        row = (
            await self._s.execute(
                select(m.kind, m.mime, m.meta).where(
                    m.organization_id == organization_id, m.id == message_id
                )
            )
        ).first()
        if row is None:
            return None
        return StoredContent(kind=MessageKind(row.kind), mime=bytes(row.mime), meta=row.meta or {})
