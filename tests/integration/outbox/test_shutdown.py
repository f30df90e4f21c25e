"""Graceful shutdown of a delivery worker, in process (both databases): what is in flight
finishes within the grace period; what waits goes back to the queue at once; what the
grace period (or a second signal) cuts off goes back too, flagged as a possible duplicate
only if its final dot had been written. The servers hold their replies behind a
:class:`Gate` the test opens, so nothing here races the wall clock. The same promises for
the real ``visitmail serve`` / ``visitmail worker`` processes: ``test_shutdown_processes``.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from tests.support.orgs import OrgFixture
from tests.support.outbox import configure_server, enqueue, make_worker, outbox_rows, wait_for
from tests.support.smtp_servers import Gate, Script, SmtpServer, start_smtp_server
from visitmail.domain.smtp_settings import Limits, Timeouts
from visitmail.runtime import Runtime
from visitmail.services import outbox


@pytest.fixture
async def servers() -> AsyncIterator[list[SmtpServer]]:
    started: list[SmtpServer] = []
    yield started
    for s in started:
        await s.close()


async def _one_connection_server(
    runtime: Runtime, org: OrgFixture, servers: list[SmtpServer], script: Script
) -> SmtpServer:
    server = await start_smtp_server(script=script)
    servers.append(server)
    await configure_server(
        runtime,
        org,
        server.port,
        limits=Limits(max_connections=1, max_messages_per_connection=50),
        # a held reply must not time out on a slow machine: the test decides when it comes
        timeouts=Timeouts(connect=10, command=600, overall=20),
    )
    return server


def _received(server: SmtpServer) -> collections.Counter[str]:
    return collections.Counter(str(m.parsed()["Message-ID"]) for m in server.recorder.messages)


async def test_the_data_reply_in_flight_is_awaited_and_the_waiting_go_back_at_once(
    runtime: Runtime, org: OrgFixture, servers: list[SmtpServer]
) -> None:
    gate = Gate(lambda n: n == 1)  # the first DATA's reply waits for the test
    server = await _one_connection_server(runtime, org, servers, Script(hold_data=gate))
    queued = [await enqueue(runtime, org, [f"wait{i}@example.org"]) for i in range(4)]
    worker = make_worker(runtime, org, concurrency=1, grace=60)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await asyncio.wait_for(gate.reached.wait(), 20)
    stop.set()

    async def others_released() -> bool:
        rows = await outbox_rows(runtime, org)
        waiting = [r for r in rows.values() if r.status == "queued"]
        return len(waiting) == 3 and all(
            r.lease_owner is None and r.attempts == 0 and not r.possible_duplicate for r in waiting
        )

    # released while the first conversation is still waiting for its reply
    await wait_for(others_released, what="the three waiting messages released")
    assert not task.done()
    rival = make_worker(runtime, org)

    async def rival_sent_them() -> bool:
        return len(server.recorder.messages) == 3  # the held first one is not recorded yet

    rival_task = asyncio.create_task(rival.run(rival_stop := asyncio.Event()))
    await wait_for(rival_sent_them, what="another worker sends the released messages")
    rival_stop.set()
    await rival_task

    gate.open()
    await asyncio.wait_for(task, 20)

    rows = await outbox_rows(runtime, org)
    assert {r.status for r in rows.values()} == {"sent"}
    assert all(r.lease_owner is None and not r.possible_duplicate for r in rows.values())
    assert _received(server) == collections.Counter(mid for _, mid in queued)  # each once


async def test_cut_off_before_the_final_dot_goes_back_unflagged(
    runtime: Runtime, org: OrgFixture, servers: list[SmtpServer]
) -> None:
    gate = Gate()  # RCPT is never answered while the worker runs
    server = await _one_connection_server(runtime, org, servers, Script(hold_rcpt=gate))
    pk, message_id = await enqueue(runtime, org, ["cut-early@example.org"])
    # grace is only an upper bound here: the server holds RCPT until the worker is gone
    worker = make_worker(runtime, org, concurrency=1, grace=0.2)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await asyncio.wait_for(gate.reached.wait(), 20)
    stop.set()
    await asyncio.wait_for(task, 20)

    row = (await outbox_rows(runtime, org))[pk]
    assert (row.status, row.lease_owner, row.lease_expires_at) == ("queued", None, None)
    assert row.attempts == 0  # not counted as an attempt
    assert not row.possible_duplicate
    assert row.not_before <= datetime.now(UTC)  # due at once, not after a lease
    async with runtime.uow() as uow:
        view = await outbox.get_message(uow, org.principal, pk)
    assert view.attempt_log == []  # a shutdown is no server failure
    async with runtime.uow() as uow:
        health = await uow.health.get(org.organization.id)
    assert health is None or health.consecutive_failures == 0

    gate.open()
    await make_worker(runtime, org).run_until_idle()
    row = (await outbox_rows(runtime, org))[pk]
    assert (row.status, row.possible_duplicate) == ("sent", False)
    assert _received(server) == {message_id: 1}


async def test_a_second_signal_cuts_off_after_the_final_dot_flagged_and_due_at_once(
    runtime: Runtime, org: OrgFixture, servers: list[SmtpServer]
) -> None:
    gate = Gate(lambda n: n == 1)  # the body arrived; its reply waits
    server = await _one_connection_server(runtime, org, servers, Script(hold_data=gate))
    pk, message_id = await enqueue(runtime, org, ["cut-late@example.org"])
    worker = make_worker(runtime, org, concurrency=1, grace=600)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await asyncio.wait_for(gate.reached.wait(), 20)
    stop.set()
    worker.hurry()  # a second SIGTERM: do not wait out the 600 s
    await asyncio.wait_for(task, 20)

    row = (await outbox_rows(runtime, org))[pk]
    assert (row.lease_owner, row.lease_expires_at) == (None, None)
    assert row.status in ("queued", "deferred")
    assert row.possible_duplicate  # the server may have it
    assert row.not_before <= datetime.now(UTC)
    async with runtime.uow() as uow:
        view = await outbox.get_message(uow, org.principal, pk)
    assert [a.outcome for a in view.attempt_log] == ["unknown"]

    # The server had the whole body when the worker went (its DATA hook runs after the
    # final dot): a real server may deliver it. The retry carries the same Message-ID.
    assert gate.held == 1
    gate.open()
    await make_worker(runtime, org).run_until_idle()
    row = (await outbox_rows(runtime, org))[pk]
    assert (row.status, row.possible_duplicate) == ("sent", True)
    assert _received(server) == {message_id: 1}
