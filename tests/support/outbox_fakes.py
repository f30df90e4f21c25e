"""In-memory fakes of the outbox ports (OutboxRepository, HealthRepository, RateLimiter),
held to the SQL adapters' behaviour by ``tests/integration/db/test_outbox_contract.py``."""

from __future__ import annotations

import math
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from tests.support.fake_transaction import CopyOnCommit
from visitmail.domain.outbox import MessageKind, MessageStatus, RecipientStatus
from visitmail.domain.smtp_settings import Limits
from visitmail.services.outbox_ports import (
    AttemptView,
    ClaimedMessage,
    Enqueued,
    MessageView,
    NewMessage,
    RecipientGrant,
    RecipientView,
    ServerHealth,
    SettledMessage,
)

_WAITING = (MessageStatus.QUEUED, MessageStatus.DEFERRED)
_FINAL = (MessageStatus.SENT, MessageStatus.FAILED, MessageStatus.CANCELLED, MessageStatus.EXPIRED)


@dataclass
class _Msg:
    view: MessageView
    organization_id: uuid.UUID
    mime: bytes
    meta: dict[str, str] = field(default_factory=dict)
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None


@dataclass
class _Bucket:
    tokens: float
    refilled_at: datetime
    slowdown: float = 1.0
    slowdown_until: datetime | None = None
    hour_start: datetime | None = None
    hour_count: int = 0
    day_start: datetime | None = None
    day_count: int = 0
    day_recipients: int = 0


@dataclass
class OutboxState:
    messages: dict[uuid.UUID, _Msg] = field(default_factory=dict)
    health: dict[uuid.UUID, ServerHealth] = field(default_factory=dict)
    buckets: dict[uuid.UUID, _Bucket] = field(default_factory=dict)


class FakeOutbox:
    def __init__(self, uow: FakeOutboxUnitOfWork) -> None:
        self._uow = uow

    @property
    def s(self) -> OutboxState:
        return self._uow.work

    async def enqueue(self, message: NewMessage, now: datetime) -> Enqueued:
        for m in self.s.messages.values():
            if (
                m.organization_id == message.organization_id
                and m.view.idempotency_key == message.idempotency_key
            ):
                return Enqueued(m.view.id, created=False)
        seen: set[str] = set()
        recipients = []
        for r in message.recipients:
            if r.address not in seen:
                seen.add(r.address)
                recipients.append(
                    RecipientView(r.address, r.role, RecipientStatus.PENDING, None, None, None, now)
                )
        view = MessageView(
            id=uuid.uuid4(),
            kind=message.kind,
            status=MessageStatus.QUEUED,
            message_id=message.message_id,
            mail_from=message.mail_from,
            subject=message.subject[:500],
            size=len(message.mime),
            priority=message.priority,
            attempts=0,
            not_before=message.not_before or now,
            expires_at=message.expires_at,
            created_at=now,
            updated_at=now,
            sent_at=None,
            possible_duplicate=False,
            last_error=None,
            idempotency_key=message.idempotency_key,
            recipients=recipients,
        )
        self.s.messages[view.id] = _Msg(
            view, message.organization_id, message.mime, meta=dict(message.meta)
        )
        return Enqueued(view.id, created=True)

    async def enqueue_many(self, messages: Sequence[NewMessage], now: datetime) -> list[Enqueued]:
        return [await self.enqueue(m, now) for m in messages]

    def _paused(self, org: uuid.UUID) -> bool:
        health = self.s.health.get(org)
        return health is not None and health.paused

    def _held_back(self, m: _Msg) -> bool:
        """A paused SMTP server holds back email only: webhooks do not use it."""
        return m.view.kind is not MessageKind.WEBHOOK and self._paused(m.organization_id)

    def _due(self, m: _Msg, now: datetime) -> bool:
        v = m.view
        return (v.status in _WAITING and v.not_before <= now) or (
            v.status is MessageStatus.SENDING
            and m.lease_expires_at is not None
            and m.lease_expires_at < now
        )

    async def claim(
        self,
        worker: str,
        limit: int,
        lease: timedelta,
        now: datetime,
        organizations: frozenset[uuid.UUID] | None = None,
    ) -> list[ClaimedMessage]:
        due = sorted(
            (
                m
                for m in self.s.messages.values()
                if self._due(m, now)
                and not self._held_back(m)
                and (organizations is None or m.organization_id in organizations)
            ),
            key=lambda m: (-m.view.priority, m.view.not_before),
        )[:limit]
        claimed = []
        for m in due:
            reclaimed = m.view.status is MessageStatus.SENDING
            m.view = replace(
                m.view,
                status=MessageStatus.SENDING,
                attempts=m.view.attempts + 1,
                updated_at=now,
                possible_duplicate=m.view.possible_duplicate or reclaimed,
            )
            m.lease_owner, m.lease_expires_at = worker, now + lease
            claimed.append(
                ClaimedMessage(
                    id=m.view.id,
                    organization_id=m.organization_id,
                    message_id=m.view.message_id,
                    mail_from=m.view.mail_from,
                    mime=m.mime,
                    open_recipients=[r.address for r in m.view.recipients if r.status.open],
                    accepted_before=sum(
                        r.status is RecipientStatus.ACCEPTED for r in m.view.recipients
                    ),
                    attempt=m.view.attempts,
                    created_at=m.view.created_at,
                    expires_at=m.view.expires_at,
                    possible_duplicate=m.view.possible_duplicate,
                    kind=m.view.kind,
                    meta=dict(m.meta),
                )
            )
        return claimed

    async def has_due(
        self, now: datetime, organizations: frozenset[uuid.UUID] | None = None
    ) -> bool:
        return any(
            (self._due(m, now) or m.view.status is MessageStatus.SENDING)
            and not self._held_back(m)
            and (organizations is None or m.organization_id in organizations)
            for m in self.s.messages.values()
        )

    async def settle(self, worker: str, items: Sequence[SettledMessage], now: datetime) -> int:
        written = 0
        for item in items:
            m = self.s.messages.get(item.message.id)
            if m is None:
                continue
            log = list(m.view.attempt_log) + [
                AttemptView(now, a.recipient, a.outcome, a.code, a.enhanced, a.text, a.duration_ms)
                for a in item.attempts
            ]
            m.view = replace(m.view, attempt_log=log)
            if m.lease_owner != worker or m.view.status is not MessageStatus.SENDING:
                continue
            st = item.settlement
            changes = {c.address: c for c in st.recipients}
            recipients = [
                replace(
                    r,
                    status=changes[r.address].status,
                    code=changes[r.address].code,
                    enhanced=changes[r.address].enhanced,
                    text=changes[r.address].text,
                    updated_at=now,
                )
                if r.address in changes
                else r
                for r in m.view.recipients
            ]
            m.view = replace(
                m.view,
                status=st.status,
                not_before=st.not_before or now,
                possible_duplicate=st.possible_duplicate,
                last_error=st.last_error,
                sent_at=now if st.status is MessageStatus.SENT else None,
                updated_at=now,
                recipients=recipients,
            )
            m.lease_owner = m.lease_expires_at = None
            written += 1
        return written

    async def release(
        self,
        worker: str,
        ids: Sequence[uuid.UUID],
        now: datetime,
        not_before: datetime | None = None,
    ) -> None:
        for i in ids:
            m = self.s.messages.get(i)
            if m and m.lease_owner == worker and m.view.status is MessageStatus.SENDING:
                m.view = replace(
                    m.view,
                    status=MessageStatus.QUEUED,
                    attempts=m.view.attempts - 1,
                    not_before=not_before or now,
                    updated_at=now,
                )
                m.lease_owner = m.lease_expires_at = None

    async def extend_leases(
        self, worker: str, ids: Sequence[uuid.UUID], until: datetime
    ) -> set[uuid.UUID]:
        renewed = set()
        for i in ids:
            m = self.s.messages.get(i)
            if m and m.lease_owner == worker:
                m.lease_expires_at = until
                renewed.add(i)
        return renewed

    async def list(
        self,
        organization_id: uuid.UUID,
        *,
        status: MessageStatus | None,
        kind: MessageKind | None,
        limit: int,
        offset: int,
    ) -> list[MessageView]:
        found = [
            replace(m.view, attempt_log=[])
            for m in self.s.messages.values()
            if m.organization_id == organization_id
            and (status is None or m.view.status is status)
            and (kind is None or m.view.kind is kind)
        ]
        found.sort(key=lambda v: (v.created_at, str(v.id)), reverse=True)
        return found[offset : offset + limit]

    async def get(self, organization_id: uuid.UUID, message_id: uuid.UUID) -> MessageView | None:
        m = self.s.messages.get(message_id)
        return m.view if m and m.organization_id == organization_id else None

    async def owned_message_ids(
        self, organization_id: uuid.UUID, message_ids: Collection[str]
    ) -> set[str]:
        wanted = set(message_ids)
        return {
            m.view.message_id
            for m in self.s.messages.values()
            if m.organization_id == organization_id and m.view.message_id in wanted
        }

    async def retry(self, organization_id: uuid.UUID, message_id: uuid.UUID, now: datetime) -> bool:
        m = self.s.messages.get(message_id)
        allowed = (*_WAITING, MessageStatus.FAILED, MessageStatus.EXPIRED, MessageStatus.CANCELLED)
        if m is None or m.organization_id != organization_id or m.view.status not in allowed:
            return False
        recipients = [
            replace(r, status=RecipientStatus.PENDING, updated_at=now)
            if r.status in (RecipientStatus.REJECTED, RecipientStatus.DEFERRED)
            else r
            for r in m.view.recipients
        ]
        m.view = replace(
            m.view,
            status=MessageStatus.QUEUED,
            not_before=now,
            updated_at=now,
            recipients=recipients,
        )
        return True

    async def cancel(
        self, organization_id: uuid.UUID, message_id: uuid.UUID, now: datetime
    ) -> bool:
        m = self.s.messages.get(message_id)
        if m is None or m.organization_id != organization_id or m.view.status not in _WAITING:
            return False
        m.view = replace(m.view, status=MessageStatus.CANCELLED, updated_at=now)
        return True

    async def counts(self, organization_id: uuid.UUID | None) -> dict[MessageStatus, int]:
        out = dict.fromkeys(MessageStatus, 0)
        for m in self.s.messages.values():
            if organization_id is None or m.organization_id == organization_id:
                out[m.view.status] += 1
        return out

    async def purge(self, finished_before: datetime) -> int:
        gone = [
            i
            for i, m in self.s.messages.items()
            if m.view.status in _FINAL and m.view.updated_at < finished_before
        ]
        for i in gone:
            del self.s.messages[i]
        return len(gone)


class FakeHealth:
    def __init__(self, uow: FakeOutboxUnitOfWork) -> None:
        self._uow = uow

    @property
    def s(self) -> OutboxState:
        return self._uow.work

    def _get(self, org: uuid.UUID) -> ServerHealth:
        return self.s.health.get(org) or ServerHealth(org, 0, None, None, None, None, None, None)

    async def get(self, organization_id: uuid.UUID) -> ServerHealth | None:
        return self.s.health.get(organization_id)

    async def record_successes(self, organization_ids: Sequence[uuid.UUID], now: datetime) -> None:
        for org in organization_ids:
            h = self._get(org)
            if h.consecutive_failures > 0 or org not in self.s.health:
                self.s.health[org] = replace(
                    h,
                    consecutive_failures=0,
                    last_success_at=now
                    if h.consecutive_failures > 0 or org not in self.s.health
                    else h.last_success_at,
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
        h = self._get(organization_id)
        failures = h.consecutive_failures + 1
        h = replace(h, consecutive_failures=failures, last_failure_at=now, last_failure=reason)
        if h.paused_at is None and failures >= pause_after:
            h = replace(
                h,
                paused_at=now,
                next_probe_at=now + probe_in,
                paused_reason=f"paused after {failures} failed connections in a row: {reason}",
            )
        self.s.health[organization_id] = h
        return h

    async def due_probes(self, now: datetime) -> list[uuid.UUID]:
        return [
            org
            for org, h in self.s.health.items()
            if h.paused_at is not None and h.next_probe_at is not None and h.next_probe_at <= now
        ]

    async def probe_failed(
        self, organization_id: uuid.UUID, reason: str, next_at: datetime
    ) -> None:
        if organization_id in self.s.health:
            h = self.s.health[organization_id]
            self.s.health[organization_id] = replace(h, next_probe_at=next_at, last_failure=reason)

    async def resume(self, organization_id: uuid.UUID, now: datetime) -> None:
        if organization_id in self.s.health:
            self.s.health[organization_id] = replace(
                self.s.health[organization_id],
                paused_at=None,
                paused_reason=None,
                next_probe_at=None,
                consecutive_failures=0,
                last_success_at=now,
            )

    async def schedule_probe(self, organization_id: uuid.UUID, now: datetime) -> None:
        h = self.s.health.get(organization_id)
        if h is not None and h.paused_at is not None:
            self.s.health[organization_id] = replace(h, next_probe_at=now)


class FakeRates:
    def __init__(self, uow: FakeOutboxUnitOfWork) -> None:
        self._uow = uow

    def _bucket(self, organization_id: uuid.UUID, limits: Limits, now: datetime) -> _Bucket:
        b = self._uow.work.buckets.setdefault(
            organization_id,
            _Bucket(
                tokens=float(limits.per_minute or 0), refilled_at=now, hour_start=now, day_start=now
            ),
        )
        assert b.day_start is not None
        if now - b.day_start >= timedelta(days=1):
            b.day_start, b.day_count, b.day_recipients = now, 0, 0
        return b

    async def take(
        self, organization_id: uuid.UUID, limits: Limits, want: int, now: datetime
    ) -> int:
        if not limits.counts_messages:
            return want
        b = self._bucket(organization_id, limits, now)
        if b.slowdown_until is not None and b.slowdown_until <= now:
            b.slowdown, b.slowdown_until = 1.0, None
        grant = want
        if limits.per_minute:
            elapsed = max(0.0, (now - b.refilled_at).total_seconds())
            b.tokens = min(
                float(limits.per_minute), b.tokens + elapsed * limits.per_minute / 60 * b.slowdown
            )
            b.refilled_at = now
            grant = min(grant, math.floor(b.tokens))
        if limits.per_hour:
            assert b.hour_start is not None
            if now - b.hour_start >= timedelta(hours=1):
                b.hour_start, b.hour_count = now, 0
            grant = min(grant, limits.per_hour - b.hour_count)
        if limits.per_day:
            grant = min(grant, limits.per_day - b.day_count)
        grant = max(0, grant)
        if limits.per_minute:
            b.tokens -= grant
        b.hour_count += grant
        b.day_count += grant
        return grant

    async def take_recipients(
        self, organization_id: uuid.UUID, limits: Limits, want: int, now: datetime
    ) -> RecipientGrant:
        if not limits.recipients_per_day:
            return RecipientGrant(want, now)
        b = self._bucket(organization_id, limits, now)
        grant = max(0, min(want, limits.recipients_per_day - b.day_recipients))
        b.day_recipients += grant
        assert b.day_start is not None
        return RecipientGrant(grant, b.day_start + timedelta(days=1))

    async def give_back(
        self, organization_id: uuid.UUID, limits: Limits, unused: int, *, recipients: int = 0
    ) -> None:
        b = self._uow.work.buckets.get(organization_id)
        if b is None:
            return
        if unused > 0 and limits.counts_messages:
            if limits.per_minute:
                b.tokens = min(float(limits.per_minute), b.tokens + unused)
            b.hour_count = max(0, b.hour_count - unused)
            b.day_count = max(0, b.day_count - unused)
        if recipients > 0 and limits.recipients_per_day:
            b.day_recipients = max(0, b.day_recipients - recipients)

    async def slow_down(self, organization_id: uuid.UUID, now: datetime) -> None:
        b = self._uow.work.buckets.get(organization_id)
        if b is not None:
            b.slowdown = max(0.125, b.slowdown / 2)
            b.slowdown_until = now + timedelta(minutes=5)


class FakeOutboxDatabase:
    def __init__(self) -> None:
        self.state = OutboxState()

    def uow(self) -> FakeOutboxUnitOfWork:
        return FakeOutboxUnitOfWork(self)


class FakeOutboxUnitOfWork(CopyOnCommit[OutboxState]):
    """Works on a copy; ``commit`` publishes it (like a transaction)."""

    def __init__(self, db: FakeOutboxDatabase) -> None:
        super().__init__(db)
        self.outbox = FakeOutbox(self)
        self.health = FakeHealth(self)
        self.rates = FakeRates(self)
