"""``limits.recipients_per_day``, enforced by the shared rate budget against a real aiosmtpd
server, on both databases, with the test's clock: a message to 2 recipients costs 2; what
does not fit waits in the queue (no attempt counted, not failed) until the day window
refills, and two workers share one budget."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from tests.support.orgs import OrgFixture
from tests.support.outbox import ManualClock, configure_server, enqueue, make_worker, outbox_rows
from tests.support.smtp_servers import SmtpServer, start_smtp_server
from visitmail.domain.smtp_settings import Limits
from visitmail.runtime import Runtime


@pytest.fixture
async def server() -> AsyncIterator[SmtpServer]:
    started = await start_smtp_server()
    yield started
    await started.close()


def delivered_recipients(server: SmtpServer) -> int:
    return sum(len(m.rcpt_tos) for m in server.recorder.messages)


async def enqueue_pairs(runtime: Runtime, org: OrgFixture, clock: ManualClock, count: int) -> None:
    for i in range(count):
        await enqueue(runtime, org, [f"a{i}@example.org", f"b{i}@example.org"], clock=clock)


@pytest.mark.parametrize(("per_day", "fit"), [(5, 2), (6, 3)])
async def test_messages_over_the_recipient_budget_wait_for_the_next_window(
    runtime: Runtime, org: OrgFixture, server: SmtpServer, per_day: int, fit: int
) -> None:
    limits = Limits(max_connections=1, max_messages_per_connection=50, recipients_per_day=per_day)
    await configure_server(runtime, org, server.port, limits=limits)
    clock = ManualClock()
    start = clock()
    await enqueue_pairs(runtime, org, clock, 4)

    await make_worker(runtime, org, clock=clock).run_until_idle()

    # 2 recipients each: with 5 a day the third would make 6, so it waits; with 6 the
    # fourth does.
    assert len(server.recorder.messages) == fit
    assert delivered_recipients(server) == 2 * fit <= per_day
    rows = list((await outbox_rows(runtime, org)).values())
    sent = [r for r in rows if r.status == "sent"]
    waiting = [r for r in rows if r.status != "sent"]
    assert len(sent) == fit
    assert len(waiting) == 4 - fit
    for row in waiting:
        assert row.status == "queued"  # deferred by the budget, not failed
        assert row.attempts == 0  # no attempt was made or counted
        assert row.not_before == start + timedelta(days=1)  # when the window refills

    clock.advance(timedelta(days=1, seconds=1))
    await make_worker(runtime, org, clock=clock).run_until_idle()

    assert {r.status for r in (await outbox_rows(runtime, org)).values()} == {"sent"}
    assert delivered_recipients(server) == 8


async def test_workers_share_one_recipient_budget(
    runtime: Runtime, org: OrgFixture, server: SmtpServer
) -> None:
    limits = Limits(max_connections=2, max_messages_per_connection=50, recipients_per_day=7)
    await configure_server(runtime, org, server.port, limits=limits)
    clock = ManualClock()
    await enqueue_pairs(runtime, org, clock, 8)

    first, second = make_worker(runtime, org, clock=clock), make_worker(runtime, org, clock=clock)
    await asyncio.gather(first.run_until_idle(), second.run_until_idle())

    # 7 a day for both workers together: three messages of 2 fit, the fourth does not.
    assert len(server.recorder.messages) == 3
    assert delivered_recipients(server) == 6
    rows = (await outbox_rows(runtime, org)).values()
    assert sorted(r.status for r in rows) == ["queued"] * 5 + ["sent"] * 3
