"""SQL repository for organizations' DKIM keys and their signing switch; every query
filters on the organization. The private half is a secret-box token, never plain text."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from visitmail.adapters.db.tables import DkimKeyRow, DkimSigningRow
from visitmail.adapters.db.upsert import insert_ignore
from visitmail.domain.dkim import DkimAlgorithm, DkimKey, DkimState

K = DkimKeyRow
S = DkimSigningRow
_PUBLIC = (K.id, K.selector, K.domain, K.algorithm, K.public_key, K.created_at)


def _key(r: Any) -> DkimKey:  # a result row with the _PUBLIC columns
    return DkimKey(
        id=r.id,
        selector=r.selector,
        domain=r.domain,
        algorithm=DkimAlgorithm(r.algorithm),
        public_key=r.public_key,
        created_at=r.created_at,
    )


class SqlDkimKeys:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(
        self, organization_id: uuid.UUID, key: DkimKey, *, sealed: str, actor_id: uuid.UUID | None
    ) -> None:
        self._s.add(
            DkimKeyRow(
                id=key.id,
                organization_id=organization_id,
                selector=key.selector,
                domain=key.domain,
                algorithm=key.algorithm.value,
                public_key=key.public_key,
                private_key_enc=sealed,
                created_at=key.created_at,
                created_by=actor_id,
            )
        )
        await self._s.flush()

    async def list(self, organization_id: uuid.UUID) -> Sequence[DkimKey]:
        rows = await self._s.execute(
            select(*_PUBLIC)
            .where(K.organization_id == organization_id)
            .order_by(K.created_at.desc(), K.selector)
        )
        return [_key(r) for r in rows]

    async def get(self, organization_id: uuid.UUID, key_id: uuid.UUID) -> DkimKey | None:
        row = (
            await self._s.execute(
                select(*_PUBLIC).where(K.organization_id == organization_id, K.id == key_id)
            )
        ).first()
        return _key(row) if row is not None else None

    async def delete(self, organization_id: uuid.UUID, key_id: uuid.UUID) -> bool:
        result = await self._s.execute(
            delete(K)
            .where(K.organization_id == organization_id, K.id == key_id)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    async def state(self, organization_id: uuid.UUID, *, for_update: bool = False) -> DkimState:
        query = select(S.enabled, S.active_key_id).where(S.organization_id == organization_id)
        if for_update:
            query = query.with_for_update()  # serializes concurrent switches on PostgreSQL
        row = (await self._s.execute(query)).first()
        if row is None:
            return DkimState(False, None)
        return DkimState(bool(row.enabled), row.active_key_id)

    async def set_state(
        self, organization_id: uuid.UUID, state: DkimState, *, now: datetime
    ) -> None:
        await insert_ignore(
            self._s,
            S,
            {
                "organization_id": organization_id,
                "enabled": state.enabled,
                "active_key_id": state.active_key_id,
                "updated_at": now,
            },
        )
        await self._s.execute(
            update(S)
            .where(S.organization_id == organization_id)
            .values(enabled=state.enabled, active_key_id=state.active_key_id, updated_at=now)
            .execution_options(synchronize_session=False)
        )

    async def signing_key(self, organization_id: uuid.UUID) -> tuple[DkimKey, str] | None:
        row = (
            await self._s.execute(
                select(*_PUBLIC, K.private_key_enc)
                .join(S, (S.active_key_id == K.id) & (S.organization_id == K.organization_id))
                .where(S.organization_id == organization_id, S.enabled.is_(True))
            )
        ).first()
        return (_key(row), row.private_key_enc) if row is not None else None

    async def organizations_with_keys(self) -> Sequence[uuid.UUID]:
        rows = await self._s.scalars(
            select(K.organization_id).distinct().order_by(K.organization_id)
        )
        return list(rows)

    async def sealed_all(self, organization_id: uuid.UUID) -> Sequence[tuple[DkimKey, str]]:
        rows = await self._s.execute(
            select(*_PUBLIC, K.private_key_enc)
            .where(K.organization_id == organization_id)
            .order_by(K.created_at, K.id)
        )
        return [(_key(r), r.private_key_enc) for r in rows]

    async def replace_sealed(
        self, organization_id: uuid.UUID, key_id: uuid.UUID, *, old: str, new: str
    ) -> bool:
        result = await self._s.execute(
            update(K)
            .where(K.organization_id == organization_id, K.id == key_id, K.private_key_enc == old)
            .values(private_key_enc=new)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))
