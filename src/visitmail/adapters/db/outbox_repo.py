"""SQL side of the outbox: enqueue, leased claims, batched settlement, the operator views.

Claims use ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, so any number of workers
take disjoint batches; on SQLite every transaction is ``BEGIN IMMEDIATE`` (one writer), which
gives the same guarantee. Settlement only touches messages the worker still leases.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Table,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Exists

from visitmail.adapters.db.tables import (
    DeliveryAttemptRow,
    OutboxMessageRow,
    OutboxRecipientRow,
    SmtpHealthRow,
)
from visitmail.domain.ids import new_id
from visitmail.domain.outbox import (
    CANCELLABLE,
    RETRYABLE,
    MessageKind,
    MessageStatus,
    RecipientStatus,
)
from visitmail.services.outbox_ports import (
    AttemptView,
    ClaimedMessage,
    Enqueued,
    MessageView,
    NewMessage,
    RecipientView,
    SettledMessage,
)

NOTIFY_CHANNEL = "visitmail_outbox"

M = OutboxMessageRow
R = OutboxRecipientRow
A = DeliveryAttemptRow

_WAITING = (MessageStatus.QUEUED.value, MessageStatus.DEFERRED.value)
# The predicates of the claim's partial indexes (tables.py), as literal SQL.
_WAITING_SQL = text("outbox_messages.status IN ('queued', 'deferred')")
_LEASED = text("outbox_messages.status = 'sending'")
_OPEN_RECIPIENT = (RecipientStatus.PENDING.value, RecipientStatus.DEFERRED.value)
_ID_CHUNK = 500


class SqlOutbox:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session
        self.enqueued = 0  # since the last commit; the unit of work wakes workers

    # --- enqueue ---------------------------------------------------------------------

    async def _existing(self, organization_id: uuid.UUID, key: str) -> uuid.UUID | None:
        return await self._s.scalar(
            select(M.id).where(M.organization_id == organization_id, M.idempotency_key == key)
        )

    async def enqueue(self, message: NewMessage, now: datetime) -> Enqueued:
        found = await self._existing(message.organization_id, message.idempotency_key)
        if found is not None:
            return Enqueued(found, created=False)
        message_pk = new_id()
        row = M(
            id=message_pk,
            organization_id=message.organization_id,
            kind=message.kind.value,
            idempotency_key=message.idempotency_key,
            message_id=message.message_id,
            mail_from=message.mail_from,
            subject=message.subject[:500],
            mime=message.mime,
            size=len(message.mime),
            priority=message.priority,
            status=MessageStatus.QUEUED.value,
            not_before=message.not_before or now,
            expires_at=message.expires_at,
            created_at=now,
            updated_at=now,
            attempts=0,
            possible_duplicate=False,
            meta=dict(message.meta),
        )
        try:
            async with self._s.begin_nested():
                self._s.add(row)
                await self._s.flush()
        except IntegrityError:
            # A concurrent enqueue with the same key won the race: return its message.
            found = await self._existing(message.organization_id, message.idempotency_key)
            if found is None:
                raise
            return Enqueued(found, created=False)
        seen: set[str] = set()
        recipients = []
        for r in message.recipients:
            if r.address in seen:
                continue
            seen.add(r.address)
            recipients.append(
                {
                    "message_pk": message_pk,
                    "organization_id": message.organization_id,
                    "address": r.address,
                    "role": r.role,
                    "status": RecipientStatus.PENDING.value,
                    "updated_at": now,
                }
            )
        await self._s.execute(insert(cast(Table, R.__table__)), recipients)
        if self.enqueued == 0 and self._s.get_bind().dialect.name == "postgresql":
            # Delivered at commit, to every listening worker on every machine.
            await self._s.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
        self.enqueued += 1
        return Enqueued(message_pk, created=True)

    async def enqueue_many(self, messages: Sequence[NewMessage], now: datetime) -> list[Enqueued]:
        """Multi-row ``INSERT … ON CONFLICT DO NOTHING RETURNING`` of the messages, then of
        their recipients (SQLAlchemy's "insertmanyvalues": one statement per 1,000 rows,
        compiled once), so the statements do not grow with the number of messages. A key
        already taken, by an earlier transaction or by a concurrent one that committed
        first, is looked up in one query on the unique index."""
        first: dict[tuple[uuid.UUID, str], NewMessage] = {}
        for m in messages:
            first.setdefault((m.organization_id, m.idempotency_key), m)
        if not first:
            return []
        rows = [_message_values(new_id(), m, now) for m in first.values()]
        returning = (M.id, M.organization_id, M.idempotency_key)
        inserted = await self._s.execute(
            _dialect_insert(self._s, M.__table__).on_conflict_do_nothing().returning(*returning),
            rows,
        )
        made = {(org, key): pk for pk, org, key in inserted}
        taken: dict[tuple[uuid.UUID, str], uuid.UUID] = {}
        lost = [k for k in first if k not in made]
        for org in {o for o, _ in lost}:
            keys = [k for o, k in lost if o == org]
            found = await self._s.execute(
                select(M.id, M.idempotency_key).where(
                    M.organization_id == org, M.idempotency_key.in_(keys)
                )
            )
            taken.update(((org, key), pk) for pk, key in found)
        recipients = [r for key, pk in made.items() for r in _recipient_values(pk, first[key], now)]
        if recipients:
            await self._s.execute(insert(cast(Table, R.__table__)).returning(R.id), recipients)
        if made and self.enqueued == 0 and self._s.get_bind().dialect.name == "postgresql":
            await self._s.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
        self.enqueued += len(made)
        results = []
        for m in messages:
            key = (m.organization_id, m.idempotency_key)
            if key in made and first[key] is m:
                results.append(Enqueued(made[key], created=True))
            elif key in made:
                results.append(Enqueued(made[key], created=False))
            elif key in taken:
                results.append(Enqueued(taken[key], created=False))
            else:  # purged between the conflict and the look-up: retry the transaction
                raise RuntimeError(f"idempotency key {key[1]!r} vanished while enqueuing")
        return results

    # --- claims ----------------------------------------------------------------------

    async def claim(
        self,
        worker: str,
        limit: int,
        lease: timedelta,
        now: datetime,
        organizations: frozenset[uuid.UUID] | None = None,
    ) -> list[ClaimedMessage]:
        # Two statements, each served by its own partial index so a claim costs the same
        # whatever the backlog (no sort of every due row): first messages whose lease
        # expired (ix_outbox_leased; their worker died with them on the wire), then
        # waiting ones by priority and time (ix_outbox_waiting). The status terms are
        # literal SQL: a bound parameter cannot prove a partial index's predicate.
        rows = list(
            await self._claim_from(
                "ix_outbox_leased",
                and_(_LEASED, M.lease_expires_at < now),
                (M.lease_expires_at,),
                worker,
                limit,
                lease,
                now,
                organizations,
            )
        )
        if len(rows) < limit:
            rows += await self._claim_from(
                "ix_outbox_waiting",
                and_(_WAITING_SQL, M.not_before <= now),
                (M.priority.desc(), M.not_before),
                worker,
                limit - len(rows),
                lease,
                now,
                organizations,
            )
        return await self._claimed(rows)

    async def _claim_from(
        self,
        index: str,
        due: ColumnElement[bool],
        order: tuple[Any, ...],
        worker: str,
        limit: int,
        lease: timedelta,
        now: datetime,
        organizations: frozenset[uuid.UUID] | None,
    ) -> Sequence[Row[Any]]:
        paused = _paused()
        chosen = (
            select(M.id)
            # A paused SMTP server holds back email only: webhooks do not use it.
            .where(due, or_(~paused, M.kind == MessageKind.WEBHOOK.value))
            .where(M.organization_id.in_(organizations) if organizations is not None else true())
            .order_by(*order)
            .limit(limit)
            .with_for_update(skip_locked=True, of=M)
            # SQLite's planner, without statistics (no one runs ANALYZE on an embedded
            # database), prefers ix_outbox_due's ``status IN (...) AND not_before <= ?``
            # and then sorts every due row: 0.5 s per claim with 90,000 waiting, which
            # made a large backlog drain at ~40 msgs/s. The partial index is the plan.
            .with_hint(M, f"INDEXED BY {index}", dialect_name="sqlite")
            .scalar_subquery()
        )
        # One statement: pick (skipping rows other workers are claiming), lease, return.
        # A message whose lease expired was on the wire when its worker died: it is
        # flagged as a possible duplicate (the SET sees the row before the update).
        result = (
            await self._s.execute(
                update(M)
                .where(M.id.in_(chosen))
                .values(
                    status=MessageStatus.SENDING.value,
                    lease_owner=worker,
                    lease_expires_at=now + lease,
                    attempts=M.attempts + 1,
                    possible_duplicate=or_(
                        M.possible_duplicate, M.status == MessageStatus.SENDING.value
                    ),
                    updated_at=now,
                )
                .returning(
                    M.id,
                    M.organization_id,
                    M.message_id,
                    M.mail_from,
                    M.mime,
                    M.attempts,
                    M.created_at,
                    M.expires_at,
                    M.possible_duplicate,
                    M.kind,
                    M.meta,
                    M.priority,
                    M.not_before,
                )
                .execution_options(synchronize_session=False)
            )
        ).all()
        return cast(Sequence[Row[Any]], result)

    async def _claimed(self, rows: Sequence[Row[Any]]) -> list[ClaimedMessage]:
        if not rows:
            return []
        rows = sorted(rows, key=lambda r: (-r.priority, r.not_before))
        ids = [r.id for r in rows]
        open_by: dict[uuid.UUID, list[str]] = {i: [] for i in ids}
        accepted_by: dict[uuid.UUID, int] = dict.fromkeys(ids, 0)
        for pk, address, status in (
            await self._s.execute(
                select(R.message_pk, R.address, R.status)
                .where(R.message_pk.in_(ids))
                .order_by(R.id)
            )
        ).all():
            if status in _OPEN_RECIPIENT:
                open_by[pk].append(address)
            elif status == RecipientStatus.ACCEPTED.value:
                accepted_by[pk] += 1
        return [
            ClaimedMessage(
                id=r.id,
                organization_id=r.organization_id,
                message_id=r.message_id,
                mail_from=r.mail_from,
                mime=r.mime,
                open_recipients=open_by[r.id],
                accepted_before=accepted_by[r.id],
                attempt=r.attempts,  # counted by the claim
                created_at=r.created_at,
                expires_at=r.expires_at,
                possible_duplicate=r.possible_duplicate,
                kind=MessageKind(r.kind),
                meta={str(k): str(v) for k, v in (r.meta or {}).items()},
            )
            for r in rows
        ]

    async def has_due(
        self, now: datetime, organizations: frozenset[uuid.UUID] | None = None
    ) -> bool:
        """Whether anything is due by ``now`` or leased by anyone, for organizations that
        are not paused (for "run until idle")."""
        paused = _paused()
        query = select(M.id).where(
            or_(
                and_(M.status.in_(_WAITING), M.not_before <= now),
                M.status == MessageStatus.SENDING.value,
            ),
            or_(~paused, M.kind == MessageKind.WEBHOOK.value),
        )
        if organizations is not None:
            query = query.where(M.organization_id.in_(organizations))
        return (await self._s.scalar(query.limit(1))) is not None

    async def _owned(self, worker: str, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        if not ids:
            return set()
        found = await self._s.scalars(
            select(M.id)
            .where(
                M.id.in_(ids),
                M.lease_owner == worker,
                M.status == MessageStatus.SENDING.value,
            )
            .with_for_update(of=M)
        )
        return set(found)

    async def settle(self, worker: str, items: Sequence[SettledMessage], now: datetime) -> int:
        owned = await self._owned(worker, [i.message.id for i in items])
        attempts: list[dict[str, Any]] = []
        for item in items:
            for a in item.attempts:
                attempts.append(
                    {
                        "message_pk": item.message.id,
                        "organization_id": item.message.organization_id,
                        "at": now,
                        "recipient": a.recipient,
                        "outcome": a.outcome,
                        "code": a.code,
                        "enhanced": a.enhanced,
                        "text": a.text,
                        "duration_ms": a.duration_ms,
                        "worker": worker,
                    }
                )
        if attempts:  # the ledger keeps every attempt, even one whose lease was lost
            await self._s.execute(insert(cast(Table, A.__table__)), attempts)
        mine = [i for i in items if i.message.id in owned]
        if not mine:
            return 0
        message_rows: list[dict[str, Any]] = []
        recipient_rows: list[dict[str, Any]] = []
        for item in mine:
            st = item.settlement
            message_rows.append(
                {
                    "b_id": item.message.id,
                    "b_status": st.status.value,
                    "b_not_before": st.not_before or now,
                    "b_dup": st.possible_duplicate,
                    "b_error": st.last_error,
                    "b_sent_at": now if st.status is MessageStatus.SENT else None,
                }
            )
            for change in st.recipients:
                recipient_rows.append(
                    {
                        "b_pk": item.message.id,
                        "b_address": change.address,
                        "b_status": change.status.value,
                        "b_code": change.code,
                        "b_enhanced": change.enhanced,
                        "b_text": change.text[:2000] if change.text else change.text,
                    }
                )
        # Core tables, not ORM entities: an executemany UPDATE with a custom WHERE.
        mt, rt = cast(Table, M.__table__), cast(Table, R.__table__)
        await self._s.execute(
            update(mt)
            .where(mt.c.id == bindparam("b_id"))
            .values(
                status=bindparam("b_status"),
                not_before=bindparam("b_not_before"),
                possible_duplicate=bindparam("b_dup"),
                last_error=bindparam("b_error"),
                sent_at=bindparam("b_sent_at"),
                lease_owner=None,
                lease_expires_at=None,
                updated_at=now,
            ),
            message_rows,
        )
        if recipient_rows:
            await self._s.execute(
                update(rt)
                .where(rt.c.message_pk == bindparam("b_pk"), rt.c.address == bindparam("b_address"))
                .values(
                    status=bindparam("b_status"),
                    last_code=bindparam("b_code"),
                    last_enhanced=bindparam("b_enhanced"),
                    last_text=bindparam("b_text"),
                    updated_at=now,
                ),
                recipient_rows,
            )
        return len(mine)

    async def release(
        self,
        worker: str,
        ids: Sequence[uuid.UUID],
        now: datetime,
        not_before: datetime | None = None,
    ) -> None:
        if not ids:
            return
        await self._s.execute(
            update(M)
            .where(M.id.in_(ids), M.lease_owner == worker, M.status == MessageStatus.SENDING.value)
            .values(
                status=MessageStatus.QUEUED.value,
                lease_owner=None,
                lease_expires_at=None,
                attempts=M.attempts - 1,
                not_before=not_before or now,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )

    async def extend_leases(
        self, worker: str, ids: Sequence[uuid.UUID], until: datetime
    ) -> set[uuid.UUID]:
        if not ids:
            return set()
        # SKIP LOCKED: a row another transaction holds is being settled or released by this
        # worker's own flush (or taken over). Waiting for it made renewal and flush lock
        # the same rows in different orders, and PostgreSQL broke the deadlock by failing
        # the flush: its messages went out again after lease expiry.
        mine = (
            select(M.id)
            .where(M.id.in_(ids), M.lease_owner == worker)
            .with_for_update(skip_locked=True, of=M)
            .scalar_subquery()
        )
        renewed = await self._s.scalars(
            update(M)
            .where(M.id.in_(mine))
            .values(lease_expires_at=until)
            .returning(M.id)
            .execution_options(synchronize_session=False)
        )
        return set(renewed)

    # --- operator views ----------------------------------------------------------------

    @staticmethod
    def _view(row: OutboxMessageRow) -> MessageView:
        return MessageView(
            id=row.id,
            kind=MessageKind(row.kind),
            status=MessageStatus(row.status),
            message_id=row.message_id,
            mail_from=row.mail_from,
            subject=row.subject,
            size=row.size,
            priority=row.priority,
            attempts=row.attempts,
            not_before=row.not_before,
            expires_at=row.expires_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
            sent_at=row.sent_at,
            possible_duplicate=row.possible_duplicate,
            last_error=row.last_error,
            idempotency_key=row.idempotency_key,
        )

    async def list(
        self,
        organization_id: uuid.UUID,
        *,
        status: MessageStatus | None,
        kind: MessageKind | None,
        limit: int,
        offset: int,
    ) -> list[MessageView]:
        query = select(M).where(M.organization_id == organization_id)
        if status is not None:
            query = query.where(M.status == status.value)
        if kind is not None:
            query = query.where(M.kind == kind.value)
        query = query.order_by(M.created_at.desc(), M.id).limit(limit).offset(offset)
        rows = (await self._s.scalars(query.execution_options(populate_existing=True))).all()
        views = [self._view(r) for r in rows]
        if not views:
            return views
        by_id: dict[uuid.UUID, list[RecipientView]] = {v.id: [] for v in views}
        for r in await self._s.scalars(
            select(R).where(R.message_pk.in_(list(by_id))).order_by(R.id)
        ):
            by_id[r.message_pk].append(_recipient(r))
        return [_with(v, recipients=by_id[v.id]) for v in views]

    async def get(self, organization_id: uuid.UUID, message_id: uuid.UUID) -> MessageView | None:
        row = await self._s.scalar(
            select(M).where(M.organization_id == organization_id, M.id == message_id)
        )
        if row is None:
            return None
        recipients = [
            _recipient(r)
            for r in await self._s.scalars(
                select(R).where(R.message_pk == message_id).order_by(R.id)
            )
        ]
        attempts = [
            AttemptView(a.at, a.recipient, a.outcome, a.code, a.enhanced, a.text, a.duration_ms)
            for a in await self._s.scalars(
                select(A).where(A.message_pk == message_id).order_by(A.at, A.id)
            )
        ]
        return _with(self._view(row), recipients=recipients, attempt_log=attempts)

    async def owned_message_ids(
        self, organization_id: uuid.UUID, message_ids: Collection[str]
    ) -> set[str]:
        wanted = sorted(set(message_ids))
        found: set[str] = set()
        # Chunked: a bound parameter per id, and SQLite and asyncpg cap their number.
        for start in range(0, len(wanted), _ID_CHUNK):
            chunk = wanted[start : start + _ID_CHUNK]
            found.update(
                await self._s.scalars(
                    select(M.message_id).where(
                        M.organization_id == organization_id, M.message_id.in_(chunk)
                    )
                )
            )
        return found

    async def retry(self, organization_id: uuid.UUID, message_id: uuid.UUID, now: datetime) -> bool:
        """Queue a finished or waiting message again now; its unaccepted recipients are
        tried again (rejected ones too: the operator decided so)."""
        result = await self._s.execute(
            update(M)
            .where(
                M.organization_id == organization_id,
                M.id == message_id,
                M.status.in_(sorted(st.value for st in RETRYABLE)),
            )
            .values(status=MessageStatus.QUEUED.value, not_before=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if not getattr(result, "rowcount", 0):
            return False
        await self._s.execute(
            update(R)
            .where(
                R.message_pk == message_id,
                R.status.in_([RecipientStatus.REJECTED.value, RecipientStatus.DEFERRED.value]),
            )
            .values(status=RecipientStatus.PENDING.value, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return True

    async def cancel(
        self, organization_id: uuid.UUID, message_id: uuid.UUID, now: datetime
    ) -> bool:
        result = await self._s.execute(
            update(M)
            .where(
                M.organization_id == organization_id,
                M.id == message_id,
                M.status.in_(sorted(st.value for st in CANCELLABLE)),
            )
            .values(status=MessageStatus.CANCELLED.value, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    async def counts(self, organization_id: uuid.UUID | None) -> dict[MessageStatus, int]:
        query = select(M.status, func.count()).group_by(M.status)
        if organization_id is not None:
            query = query.where(M.organization_id == organization_id)
        found = {MessageStatus(s): int(n) for s, n in (await self._s.execute(query)).all()}
        return {s: found.get(s, 0) for s in MessageStatus}

    async def purge(self, finished_before: datetime) -> int:
        final = [
            MessageStatus.SENT.value,
            MessageStatus.FAILED.value,
            MessageStatus.CANCELLED.value,
            MessageStatus.EXPIRED.value,
        ]
        ids = list(
            await self._s.scalars(
                select(M.id).where(M.status.in_(final), M.updated_at < finished_before).limit(5000)
            )
        )
        if not ids:
            return 0
        # Children first: SQLite only cascades with foreign keys on, and we never rely on it.
        await self._s.execute(delete(A).where(A.message_pk.in_(ids)))
        await self._s.execute(delete(R).where(R.message_pk.in_(ids)))
        await self._s.execute(delete(M).where(M.id.in_(ids)))
        return len(ids)


def _paused() -> Exists:
    """The message's organization has its queue paused (server health)."""
    return exists(
        select(SmtpHealthRow.organization_id).where(
            SmtpHealthRow.organization_id == M.organization_id,
            SmtpHealthRow.paused_at.is_not(None),
        )
    )


def _recipient(r: OutboxRecipientRow) -> RecipientView:
    return RecipientView(
        address=r.address,
        role=r.role,
        status=RecipientStatus(r.status),
        code=r.last_code,
        enhanced=r.last_enhanced,
        text=r.last_text,
        updated_at=r.updated_at,
    )


def _with(view: MessageView, **changes: Any) -> MessageView:
    return replace(view, **changes)


# --- enqueue_many helpers --------------------------------------------------------------


def _dialect_insert(session: AsyncSession, table: Any) -> Any:
    """The dialect's INSERT (it has ``on_conflict_do_nothing``) for SQLite or PostgreSQL."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _message_values(pk: uuid.UUID, message: NewMessage, now: datetime) -> dict[str, Any]:
    return {
        "id": pk,
        "organization_id": message.organization_id,
        "kind": message.kind.value,
        "idempotency_key": message.idempotency_key,
        "message_id": message.message_id,
        "mail_from": message.mail_from,
        "subject": message.subject[:500],
        "mime": message.mime,
        "size": len(message.mime),
        "priority": message.priority,
        "status": MessageStatus.QUEUED.value,
        "not_before": message.not_before or now,
        "expires_at": message.expires_at,
        "created_at": now,
        "updated_at": now,
        "attempts": 0,
        "possible_duplicate": False,
        "meta": dict(message.meta),
    }


def _recipient_values(pk: uuid.UUID, message: NewMessage, now: datetime) -> list[dict[str, Any]]:
    """One row per distinct address (a repeated address is one recipient)."""
    seen: set[str] = set()
    out = []
    for r in message.recipients:
        if r.address in seen:
            continue
        seen.add(r.address)
        out.append(
            {
                "message_pk": pk,
                "organization_id": message.organization_id,
                "address": r.address,
                "role": r.role,
                "status": RecipientStatus.PENDING.value,
                "updated_at": now,
            }
        )
    return out
