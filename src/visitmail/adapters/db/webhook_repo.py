"""SQL repository for organizations' webhook secrets; every query filters on the
organization. Values are secret-box tokens, never plain text."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from visitmail.adapters.db.tables import WebhookSecretRow
from visitmail.adapters.db.upsert import insert_ignore
from visitmail.services.webhook_ports import WebhookSecretInfo

W = WebhookSecretRow


class SqlWebhookSecrets:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def list(self, organization_id: uuid.UUID) -> Sequence[WebhookSecretInfo]:
        rows = await self._s.execute(
            select(W.name, W.created_at, W.updated_at)
            .where(W.organization_id == organization_id)
            .order_by(W.name)
        )
        return [WebhookSecretInfo(r.name, r.created_at, r.updated_at) for r in rows]

    async def get_sealed(self, organization_id: uuid.UUID, name: str) -> str | None:
        return await self._s.scalar(
            select(W.secret_enc).where(W.organization_id == organization_id, W.name == name)
        )

    async def put(self, organization_id: uuid.UUID, name: str, sealed: str, now: datetime) -> bool:
        # Insert-or-ignore first, so two concurrent puts of a new name never collide; the
        # update then sets the value either way (the last put wins).
        existed = await self.get_sealed(organization_id, name) is not None
        await insert_ignore(
            self._s,
            W,
            {
                "organization_id": organization_id,
                "name": name,
                "secret_enc": sealed,
                "created_at": now,
                "updated_at": now,
            },
        )
        await self._s.execute(
            update(W)
            .where(W.organization_id == organization_id, W.name == name)
            .values(secret_enc=sealed, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return not existed

    async def delete(self, organization_id: uuid.UUID, name: str) -> bool:
        result = await self._s.execute(
            delete(W)
            .where(W.organization_id == organization_id, W.name == name)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    async def organizations_with_secrets(self) -> Sequence[uuid.UUID]:
        rows = await self._s.scalars(
            select(W.organization_id).distinct().order_by(W.organization_id)
        )
        return list(rows)

    async def sealed_all(self, organization_id: uuid.UUID) -> Sequence[tuple[str, str]]:
        rows = await self._s.execute(
            select(W.name, W.secret_enc)
            .where(W.organization_id == organization_id)
            .order_by(W.name)
        )
        return [(r.name, r.secret_enc) for r in rows]

    async def replace_sealed(
        self, organization_id: uuid.UUID, name: str, *, old: str, new: str
    ) -> bool:
        result = await self._s.execute(
            update(W)
            .where(W.organization_id == organization_id, W.name == name, W.secret_enc == old)
            .values(secret_enc=new)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))
