"""SQL repository of relay webhook endpoints; every admin query filters on the organization,
the receiver's lookup is by the token's hash."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from visitmail.adapters.db.tables import RelayWebhookRow
from visitmail.adapters.db.upsert import insert_ignore
from visitmail.domain.relay_events import RelayProvider
from visitmail.services.relay_webhook_ports import RelayEndpoint

R = RelayWebhookRow


def _endpoint(row: RelayWebhookRow) -> RelayEndpoint:
    return RelayEndpoint(
        id=row.id,
        organization_id=row.organization_id,
        provider=RelayProvider(row.provider),
        username=row.username,
        public_key=row.public_key,
        topic_arn=row.topic_arn,
        secret_sealed=row.secret_enc,
        created_at=row.created_at,
        last_event_at=row.last_event_at,
        applied=row.applied,
        duplicates=row.duplicates,
        unmatched=row.unmatched,
    )


class SqlRelayWebhooks:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def list(self, organization_id: uuid.UUID) -> Sequence[RelayEndpoint]:
        rows = await self._s.scalars(
            select(R).where(R.organization_id == organization_id).order_by(R.provider)
        )
        return [_endpoint(r) for r in rows]

    async def get(
        self, organization_id: uuid.UUID, provider: RelayProvider
    ) -> RelayEndpoint | None:
        row = await self._s.scalar(
            select(R).where(R.organization_id == organization_id, R.provider == provider.value)
        )
        return _endpoint(row) if row else None

    async def by_token_hash(self, provider: RelayProvider, token_hash: str) -> RelayEndpoint | None:
        row = await self._s.scalar(
            select(R).where(R.token_hash == token_hash, R.provider == provider.value)
        )
        return _endpoint(row) if row else None

    async def create(
        self, organization_id: uuid.UUID, provider: RelayProvider, token_hash: str, now: datetime
    ) -> bool:
        if await self.get(organization_id, provider) is not None:
            return False
        await insert_ignore(
            self._s,
            R,
            {
                "id": uuid.uuid4(),
                "organization_id": organization_id,
                "provider": provider.value,
                "token_hash": token_hash,
                "created_at": now,
                "updated_at": now,
                "applied": 0,
                "duplicates": 0,
                "unmatched": 0,
            },
        )
        stored = await self.get(organization_id, provider)
        return stored is not None

    async def set_verification(
        self,
        organization_id: uuid.UUID,
        provider: RelayProvider,
        *,
        username: str | None,
        public_key: str | None,
        topic_arn: str | None,
        secret_sealed: str | None,
        now: datetime,
    ) -> None:
        await self._s.execute(
            update(R)
            .where(R.organization_id == organization_id, R.provider == provider.value)
            .values(
                username=username,
                public_key=public_key,
                topic_arn=topic_arn,
                secret_enc=secret_sealed,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )

    async def delete(self, organization_id: uuid.UUID, provider: RelayProvider) -> bool:
        result = await self._s.execute(
            delete(R)
            .where(R.organization_id == organization_id, R.provider == provider.value)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    async def count(
        self,
        endpoint_id: uuid.UUID,
        *,
        applied: int,
        duplicates: int,
        unmatched: int,
        now: datetime,
    ) -> None:
        values: dict[str, Any] = {
            "applied": R.applied + applied,
            "duplicates": R.duplicates + duplicates,
            "unmatched": R.unmatched + unmatched,
            "last_event_at": now,
        }
        await self._s.execute(
            update(R)
            .where(R.id == endpoint_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )

    async def organizations_with_secrets(self) -> Sequence[uuid.UUID]:
        rows = await self._s.scalars(
            select(R.organization_id)
            .where(R.secret_enc.is_not(None))
            .distinct()
            .order_by(R.organization_id)
        )
        return list(rows)

    async def sealed_all(self, organization_id: uuid.UUID) -> Sequence[tuple[RelayProvider, str]]:
        rows = await self._s.execute(
            select(R.provider, R.secret_enc)
            .where(R.organization_id == organization_id, R.secret_enc.is_not(None))
            .order_by(R.provider)
        )
        return [(RelayProvider(r.provider), r.secret_enc) for r in rows]

    async def replace_sealed(
        self, organization_id: uuid.UUID, provider: RelayProvider, *, old: str, new: str
    ) -> bool:
        result = await self._s.execute(
            update(R)
            .where(
                R.organization_id == organization_id,
                R.provider == provider.value,
                R.secret_enc == old,
            )
            .values(secret_enc=new)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))
