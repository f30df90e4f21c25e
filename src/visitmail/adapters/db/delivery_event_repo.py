"""Bounces and complaints in SQL (``services.delivery_event_ports``): set-based per batch,
every query served by an index that leads with the organization."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, literal_column, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from visitmail.adapters.db.tables import (
    DeliveryEventRow,
    OutboxMessageRow,
    OutboxRecipientRow,
)
from visitmail.domain.delivery_events import DeliveryEventKind
from visitmail.domain.delivery_reports import Severity
from visitmail.domain.ids import new_id
from visitmail.domain.outbox import MessageKind, RecipientStatus
from visitmail.services.delivery_event_ports import (
    MatchedEvent,
    SentMessage,
    StoredDeliveryEvent,
)

E = DeliveryEventRow
M = OutboxMessageRow
R = OutboxRecipientRow
# A bound parameter per value: SQLite and asyncpg cap their number per statement.
_CHUNK = 500
# Which states an event may move a recipient from (see the port's docstring).
_FROM = {
    RecipientStatus.BOUNCED.value: [RecipientStatus.ACCEPTED.value],
    RecipientStatus.COMPLAINED.value: [
        RecipientStatus.ACCEPTED.value,
        RecipientStatus.BOUNCED.value,
    ],
}


def _chunks(values: Sequence[Any]) -> list[Sequence[Any]]:
    return [values[i : i + _CHUNK] for i in range(0, len(values), _CHUNK)]


def _report_id(meta: object) -> uuid.UUID | None:
    value = meta.get("report_id") if isinstance(meta, dict) else None
    try:
        return uuid.UUID(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _stored(row: DeliveryEventRow) -> StoredDeliveryEvent:
    return StoredDeliveryEvent(
        id=row.id,
        kind=row.kind,
        severity=row.severity,
        source=row.source,
        address=row.address,
        outbox_id=row.outbox_id,
        report_id=row.report_id,
        status=row.status,
        diagnostic=row.diagnostic,
        occurred_at=row.occurred_at,
    )


class SqlDeliveryEvents:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def sent_messages(
        self, organization_id: uuid.UUID, message_ids: Collection[str]
    ) -> dict[str, SentMessage]:
        found: dict[str, tuple[uuid.UUID, str, object]] = {}
        for chunk in _chunks(sorted(set(message_ids))):
            rows = await self._s.execute(
                select(M.id, M.message_id, M.kind, M.meta).where(
                    M.organization_id == organization_id, M.message_id.in_(chunk)
                )
            )
            for pk, message_id, kind, meta in rows:
                found[message_id] = (pk, kind, meta)
        recipients: dict[uuid.UUID, set[str]] = {pk: set() for pk, _, _ in found.values()}
        for chunk in _chunks(sorted(recipients, key=str)):
            addressed = await self._s.execute(
                select(R.message_pk, func.lower(R.address)).where(R.message_pk.in_(chunk))
            )
            for pk, address in addressed:
                recipients[pk].add(address)
        return {
            message_id: SentMessage(
                outbox_id=pk,
                message_id=message_id,
                kind=MessageKind(kind),
                report_id=_report_id(meta),
                recipients=frozenset(recipients[pk]),
            )
            for message_id, (pk, kind, meta) in found.items()
        }

    async def record(
        self, organization_id: uuid.UUID, matched: Sequence[MatchedEvent], received_at: datetime
    ) -> list[MatchedEvent]:
        if not matched:
            return []
        rows = [
            {
                "id": new_id(),
                "organization_id": organization_id,
                "source": m.event.source.value,
                "source_ref": m.event.source_ref,
                "kind": m.event.kind.value,
                "severity": m.event.severity.value if m.event.severity else None,
                "address": m.event.address,
                "outbox_id": m.message.outbox_id,
                "message_kind": m.message.kind.value,
                "report_id": m.message.report_id,
                "message_id": m.message.message_id,
                "status": m.event.status,
                "diagnostic": m.event.diagnostic,
                "occurred_at": m.event.occurred_at,
                "received_at": received_at,
            }
            for m in matched
        ]
        table = cast(Table, E.__table__)
        module: Any = postgresql if self._s.get_bind().dialect.name == "postgresql" else sqlite
        stored = await self._s.execute(
            module.insert(table)
            .on_conflict_do_nothing()
            .returning(table.c.source, table.c.source_ref, table.c.address),
            rows,
        )
        new = {(source, ref, address) for source, ref, address in stored}
        result: list[MatchedEvent] = []
        for m in matched:  # the same event twice in one batch counts once
            key = (m.event.source.value, m.event.source_ref, m.event.address)
            if key in new:
                new.discard(key)
                result.append(m)
        return result

    async def mark_recipients(
        self, organization_id: uuid.UUID, matched: Sequence[MatchedEvent], now: datetime
    ) -> None:
        # One executemany per target state: a relay posts its events in batches of hundreds.
        for state, sources in _FROM.items():
            params = [
                {
                    "pk": m.message.outbox_id,
                    "address_lower": m.event.address,
                    "new_enhanced": m.event.status,
                    "new_text": m.event.diagnostic or None,
                }
                for m in matched
                if m.event.recipient_state == state
            ]
            if not params:
                continue
            # Core, not the ORM entity: a list of parameters to an ORM UPDATE means "bulk
            # update by primary key", and these rows are found by message and address.
            t = cast(Table, R.__table__)
            await self._s.execute(
                update(t)
                .where(
                    t.c.message_pk == bindparam("pk"),
                    t.c.organization_id == organization_id,
                    func.lower(t.c.address) == bindparam("address_lower"),
                    # Literal states: an expanding IN cannot be used with executemany.
                    t.c.status.in_([literal_column(f"'{old}'") for old in sources]),
                )
                .values(
                    status=state,
                    last_enhanced=bindparam("new_enhanced"),
                    last_text=bindparam("new_text"),
                    last_code=None,
                    updated_at=now,
                ),
                params,
            )

    async def soft_bounces(
        self, organization_id: uuid.UUID, addresses: Collection[str], since: datetime
    ) -> dict[str, int]:
        counts: dict[str, int] = {}
        for chunk in _chunks(sorted({a.lower() for a in addresses})):
            rows = await self._s.execute(
                select(E.address, func.count())
                .where(
                    E.organization_id == organization_id,
                    E.address.in_(chunk),
                    E.occurred_at >= since,
                    E.kind == DeliveryEventKind.BOUNCED.value,
                    E.severity == Severity.SOFT.value,
                )
                .group_by(E.address)
            )
            counts.update({address: int(n) for address, n in rows})
        return counts

    async def for_report(
        self, organization_id: uuid.UUID, report_id: uuid.UUID
    ) -> list[StoredDeliveryEvent]:
        rows = await self._s.scalars(
            select(E)
            .where(E.organization_id == organization_id, E.report_id == report_id)
            .order_by(E.occurred_at.desc(), E.id.desc())
            .limit(100)
        )
        return [_stored(r) for r in rows]

    async def recent(self, organization_id: uuid.UUID, limit: int) -> list[StoredDeliveryEvent]:
        rows = await self._s.scalars(
            select(E)
            .where(E.organization_id == organization_id)
            .order_by(E.received_at.desc(), E.id.desc())
            .limit(limit)
        )
        return [_stored(r) for r in rows]

    async def counts_since(self, organization_id: uuid.UUID, since: datetime) -> dict[str, int]:
        rows = await self._s.execute(
            select(E.kind, E.severity, func.count())
            .where(E.organization_id == organization_id, E.received_at >= since)
            .group_by(E.kind, E.severity)
        )
        counts: dict[str, int] = {}
        for kind, severity, n in rows:
            key = f"{kind}_{severity}" if severity else kind
            counts[key] = counts.get(key, 0) + int(n)
        return counts

    async def messages_sent(self, organization_id: uuid.UUID) -> int:
        # An index-only count on ix_outbox_org_status; the outbox keeps finished messages
        # for the retention period (30 days by default), so this is the window's mail.
        found = await self._s.scalar(
            select(func.count())
            .select_from(M)
            .where(M.organization_id == organization_id, M.status == "sent")
        )
        return int(found or 0)

    async def for_message(
        self, organization_id: uuid.UUID, outbox_id: uuid.UUID
    ) -> list[StoredDeliveryEvent]:
        rows = await self._s.scalars(
            select(E)
            .where(E.organization_id == organization_id, E.outbox_id == outbox_id)
            .order_by(E.occurred_at.desc(), E.id.desc())
            .limit(100)
        )
        return [_stored(r) for r in rows]
