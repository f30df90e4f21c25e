"""One contract for the outbox ports, held by the in-memory fakes and by the SQL adapters on
both databases."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from tests.support.orgs import new_org
from tests.support.outbox_fakes import FakeOutboxDatabase
from visitmail.domain.outbox import (
    MessageKind,
    MessageStatus,
    RecipientChange,
    RecipientStatus,
    Settlement,
)
from visitmail.domain.smtp_settings import Limits
from visitmail.runtime import Runtime
from visitmail.services.outbox_ports import AttemptRecord, NewMessage, NewRecipient, SettledMessage

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)
UowFactory = Callable[[], Any]


@pytest.fixture(params=["fake", "sql"])
def make_uow(request: pytest.FixtureRequest, runtime: Runtime) -> UowFactory:
    if request.param == "fake":
        return FakeOutboxDatabase().uow
    return runtime.uow


@pytest.fixture
async def org_id(runtime: Runtime) -> uuid.UUID:
    # A real organization row (the SQL tables reference it); the fake ignores it.
    return (await new_org(runtime)).organization.id


def message(org: uuid.UUID, key: str, to: list[str], priority: int = 0) -> NewMessage:
    return NewMessage(
        organization_id=org,
        kind=MessageKind.NOTIFICATION,
        idempotency_key=key,
        message_id=f"<{key}@example.com>",
        mail_from="s@example.com",
        subject=f"subject {key}",
        mime=b"Subject: x\r\n\r\nbody\r\n",
        recipients=[NewRecipient(a) for a in to],
        priority=priority,
        not_before=NOW,
    )


async def _enqueue(make_uow: UowFactory, *messages: NewMessage) -> list[uuid.UUID]:
    async with make_uow() as uow:
        ids = [(await uow.outbox.enqueue(m, NOW)).id for m in messages]
        await uow.commit()
    return ids


async def _claim(make_uow: UowFactory, worker: str, org: uuid.UUID, at: datetime, n: int = 10):  # type: ignore[no-untyped-def]
    async with make_uow() as uow:
        claimed = await uow.outbox.claim(worker, n, LEASE, at, frozenset({org}))
        await uow.commit()
    return claimed


def _sent(claimed: Any, address: str) -> SettledMessage:
    return SettledMessage(
        claimed,
        Settlement(
            status=MessageStatus.SENT,
            not_before=None,
            recipients=[RecipientChange(address, RecipientStatus.ACCEPTED, 250, "2.0.0", "ok")],
            possible_duplicate=claimed.possible_duplicate,
            throttled=False,
            server_failure=False,
            last_error=None,
        ),
        [AttemptRecord(address, "accepted", 250, "2.0.0", "ok", 12)],
    )


async def test_enqueue_is_idempotent_per_key_and_dedupes_recipients(
    make_uow: UowFactory, org_id: uuid.UUID
) -> None:
    a, b = await _enqueue(
        make_uow,
        message(org_id, "k1", ["x@example.org", "x@example.org", "y@example.org"]),
        message(org_id, "k1", ["z@example.org"]),
    )
    assert a == b
    async with make_uow() as uow:
        view = await uow.outbox.get(org_id, a)
        assert await uow.outbox.get(uuid.uuid4(), a) is None  # another organization: nothing
    assert view is not None
    assert [r.address for r in view.recipients] == ["x@example.org", "y@example.org"]
    assert view.status is MessageStatus.QUEUED


async def test_enqueue_many_answers_each_message_in_order_and_keys_stay_unique(
    make_uow: UowFactory, org_id: uuid.UUID
) -> None:
    (earlier,) = await _enqueue(make_uow, message(org_id, "m0", ["a@example.org"]))
    async with make_uow() as uow:
        results = await uow.outbox.enqueue_many(
            [
                message(org_id, "m1", ["b@example.org", "b@example.org", "c@example.org"]),
                message(org_id, "m0", ["z@example.org"]),  # queued by an earlier transaction
                message(org_id, "m2", ["d@example.org"]),
                message(org_id, "m1", ["y@example.org"]),  # repeated in the same batch
            ],
            NOW,
        )
        assert await uow.outbox.enqueue_many([], NOW) == []
        await uow.commit()
    first, again, second, repeated = results
    assert (first.created, again.created, second.created, repeated.created) == (
        True,
        False,
        True,
        False,
    )
    assert again.id == earlier
    assert repeated.id == first.id
    assert len({first.id, second.id, earlier}) == 3
    async with make_uow() as uow:
        view = await uow.outbox.get(org_id, first.id)
        assert (await uow.outbox.get(org_id, earlier)).recipients[0].address == "a@example.org"  # type: ignore[union-attr]
        counts = await uow.outbox.counts(org_id)
    assert view is not None
    assert [r.address for r in view.recipients] == ["b@example.org", "c@example.org"]
    assert (view.status, view.idempotency_key, view.subject) == (
        MessageStatus.QUEUED,
        "m1",
        "subject m1",
    )
    assert counts[MessageStatus.QUEUED] == 3


async def test_claims_are_exclusive_until_the_lease_expires_then_flagged(
    make_uow: UowFactory, org_id: uuid.UUID
) -> None:
    (pk,) = await _enqueue(make_uow, message(org_id, "lease", ["x@example.org"]))
    (first,) = await _claim(make_uow, "w1", org_id, NOW)
    assert first.attempt == 1
    assert not first.possible_duplicate
    assert first.open_recipients == ["x@example.org"]
    assert await _claim(make_uow, "w2", org_id, NOW + timedelta(minutes=1)) == []
    (again,) = await _claim(make_uow, "w2", org_id, NOW + LEASE + timedelta(seconds=1))
    assert again.id == pk
    assert again.attempt == 2
    assert again.possible_duplicate  # w1 may have put it on the wire


async def test_settlement_only_from_the_lease_holder_but_the_ledger_keeps_all(
    make_uow: UowFactory, org_id: uuid.UUID
) -> None:
    (pk,) = await _enqueue(make_uow, message(org_id, "own", ["x@example.org"]))
    (claimed,) = await _claim(make_uow, "w1", org_id, NOW)
    async with make_uow() as uow:
        assert await uow.outbox.settle("intruder", [_sent(claimed, "x@example.org")], NOW) == 0
        assert await uow.outbox.settle("w1", [_sent(claimed, "x@example.org")], NOW) == 1
        await uow.commit()
    async with make_uow() as uow:
        view = await uow.outbox.get(org_id, pk)
    assert view is not None
    assert view.status is MessageStatus.SENT
    assert view.sent_at == NOW
    assert view.recipients[0].status is RecipientStatus.ACCEPTED
    assert len(view.attempt_log) == 2  # the intruder's attempt is kept too


async def test_release_gives_back_uncounted_and_priority_orders_claims(
    make_uow: UowFactory, org_id: uuid.UUID
) -> None:
    low, high = await _enqueue(
        make_uow,
        message(org_id, "low", ["x@example.org"]),
        message(org_id, "high", ["y@example.org"], priority=5),
    )
    claimed = await _claim(make_uow, "w1", org_id, NOW, n=1)
    assert [c.id for c in claimed] == [high]
    later = NOW + timedelta(minutes=2)
    async with make_uow() as uow:
        await uow.outbox.release("w1", [high], NOW, not_before=later)
        await uow.commit()
    async with make_uow() as uow:
        view = await uow.outbox.get(org_id, high)
    assert view is not None
    assert (view.status, view.attempts, view.not_before) == (MessageStatus.QUEUED, 0, later)
    assert [c.id for c in await _claim(make_uow, "w1", org_id, NOW)] == [low]


async def test_lease_renewal_extends_only_this_workers_leases_and_names_them(
    make_uow: UowFactory, org_id: uuid.UUID
) -> None:
    mine, theirs = await _enqueue(
        make_uow,
        message(org_id, "renew-mine", ["x@example.org"]),
        message(org_id, "renew-theirs", ["y@example.org"]),
    )
    assert [c.id for c in await _claim(make_uow, "w1", org_id, NOW, n=1)] == [mine]
    assert [c.id for c in await _claim(make_uow, "w2", org_id, NOW, n=1)] == [theirs]
    async with make_uow() as uow:
        renewed = await uow.outbox.extend_leases("w1", [mine, theirs], NOW + 2 * LEASE)
        await uow.commit()
    assert renewed == {mine}
    # w2's lease ran out and another worker takes it over; w1's was extended
    later = NOW + LEASE + timedelta(seconds=1)
    assert [c.id for c in await _claim(make_uow, "w3", org_id, later)] == [theirs]


async def test_lease_renewal_skips_a_message_being_settled_instead_of_waiting(
    backend: str, runtime: Runtime, org_id: uuid.UUID
) -> None:
    """A worker renews its leases while its own settlement of some of them is being
    written, on another connection. Waiting for those rows made the two transactions
    lock the same rows in different orders: PostgreSQL broke the deadlock by failing the
    settlement, whose messages then went out a second time after lease expiry."""
    if backend != "postgresql":
        pytest.skip("SQLite has no row locks: its single writer runs one transaction at once")
    settling, other = await _enqueue(
        runtime.uow,
        message(org_id, "lock-settling", ["x@example.org"]),
        message(org_id, "lock-other", ["y@example.org"]),
    )
    claimed = {c.id: c for c in await _claim(runtime.uow, "w1", org_id, NOW)}
    async with runtime.uow() as settlement:
        assert await settlement.outbox.settle(
            "w1", [_sent(claimed[settling], "x@example.org")], NOW
        )
        async with runtime.uow() as renewal:  # the lease keeper, while the flush is open
            # Before the fix this waited on the settlement's row lock (here: failed).
            await renewal.session.execute(text("SET LOCAL lock_timeout = '2s'"))
            renewed = await renewal.outbox.extend_leases("w1", [settling, other], NOW + 2 * LEASE)
            await renewal.commit()
        await settlement.commit()
    assert renewed == {other}
    async with runtime.uow() as uow:
        view = await uow.outbox.get(org_id, settling)
    assert view is not None and view.status is MessageStatus.SENT


async def test_retry_cancel_counts_and_purge(make_uow: UowFactory, org_id: uuid.UUID) -> None:
    done, waiting = await _enqueue(
        make_uow,
        message(org_id, "done", ["x@example.org"]),
        message(org_id, "waiting", ["y@example.org"]),
    )
    claimed = [c for c in await _claim(make_uow, "w", org_id, NOW) if c.id == done]
    async with make_uow() as uow:
        await uow.outbox.settle("w", [_sent(claimed[0], "x@example.org")], NOW)
        await uow.outbox.release("w", [waiting], NOW)
        assert not await uow.outbox.retry(org_id, done, NOW)  # sent: nothing to retry
        assert await uow.outbox.cancel(org_id, waiting, NOW)
        assert not await uow.outbox.cancel(org_id, done, NOW)
        await uow.commit()
    async with make_uow() as uow:
        counts = await uow.outbox.counts(org_id)
        assert (counts[MessageStatus.SENT], counts[MessageStatus.CANCELLED]) == (1, 1)
        assert await uow.outbox.retry(org_id, waiting, NOW)
        # purge works in batches (5,000 per call) over every organization, and other tests
        # of the session leave finished messages too: call it until nothing is left.
        purged = await uow.outbox.purge(NOW + timedelta(seconds=1))
        assert purged >= 1
        while purged:
            purged = await uow.outbox.purge(NOW + timedelta(seconds=1))
        await uow.commit()
    async with make_uow() as uow:
        assert await uow.outbox.get(org_id, done) is None
        assert (await uow.outbox.get(org_id, waiting)).status is MessageStatus.QUEUED  # type: ignore[union-attr]


async def test_owned_message_ids_answers_only_this_organizations_ids(
    make_uow: UowFactory, org_id: uuid.UUID, runtime: Runtime
) -> None:
    other = (await new_org(runtime, "Other")).organization.id
    await _enqueue(
        make_uow,
        message(org_id, "mine", ["x@example.org"]),
        message(other, "theirs", ["y@example.org"]),
    )
    many = [f"<n{i}@example.com>" for i in range(1200)]  # more than one chunk of ids
    async with make_uow() as uow:
        asked = ["<mine@example.com>", "<theirs@example.com>", *many]
        assert await uow.outbox.owned_message_ids(org_id, asked) == {"<mine@example.com>"}
        assert await uow.outbox.owned_message_ids(other, asked) == {"<theirs@example.com>"}
        assert await uow.outbox.owned_message_ids(org_id, []) == set()


async def test_health_pauses_at_the_threshold_and_paused_queues_are_not_claimed(
    make_uow: UowFactory, org_id: uuid.UUID
) -> None:
    await _enqueue(make_uow, message(org_id, "paused", ["x@example.org"]))
    async with make_uow() as uow:
        first = await uow.health.record_failure(
            org_id, "auth: 535", NOW, pause_after=2, probe_in=timedelta(minutes=1)
        )
        second = await uow.health.record_failure(
            org_id, "auth: 535", NOW, pause_after=2, probe_in=timedelta(minutes=1)
        )
        await uow.commit()
    assert not first.paused
    assert second.paused
    assert "535" in (second.paused_reason or "")
    assert await _claim(make_uow, "w", org_id, NOW) == []
    async with make_uow() as uow:
        assert await uow.health.due_probes(NOW) == []
        assert org_id in await uow.health.due_probes(NOW + timedelta(minutes=1))
        await uow.health.resume(org_id, NOW)
        await uow.commit()
    assert len(await _claim(make_uow, "w", org_id, NOW)) == 1


async def test_rate_budget_is_shared_and_refills(make_uow: UowFactory, org_id: uuid.UUID) -> None:
    limits = Limits(per_minute=2, per_hour=3)
    async with make_uow() as uow:
        assert await uow.rates.take(org_id, limits, 5, NOW) == 2
        await uow.commit()
    async with make_uow() as uow:  # another worker, same budget
        assert await uow.rates.take(org_id, limits, 1, NOW) == 0
        assert await uow.rates.take(org_id, limits, 5, NOW + timedelta(seconds=60)) == 1  # hour cap
        assert await uow.rates.take(org_id, Limits(), 7, NOW) == 7  # no limits: no budget
        await uow.commit()


async def test_recipient_budget_is_shared_given_back_and_refills_with_the_day(
    make_uow: UowFactory, org_id: uuid.UUID
) -> None:
    limits = Limits(recipients_per_day=5)
    async with make_uow() as uow:
        grant = await uow.rates.take_recipients(org_id, limits, 4, NOW)
        assert (grant.granted, grant.refill_at) == (4, NOW + timedelta(days=1))
        await uow.commit()
    later = NOW + timedelta(hours=3)
    async with make_uow() as uow:  # another worker, same day window
        assert (await uow.rates.take_recipients(org_id, limits, 4, later)).granted == 1
        assert (await uow.rates.take_recipients(org_id, limits, 1, later)).granted == 0
        await uow.rates.give_back(org_id, limits, 0, recipients=2)  # 2 were not used
        await uow.commit()
    async with make_uow() as uow:
        grant = await uow.rates.take_recipients(org_id, limits, 4, later)
        assert grant.granted == 2
        assert grant.refill_at == NOW + timedelta(days=1)  # the window does not move
        assert (await uow.rates.take_recipients(org_id, limits, 9, grant.refill_at)).granted == 5
        no_limit = await uow.rates.take_recipients(org_id, Limits(), 9, NOW)
        assert no_limit.granted == 9
        await uow.commit()
