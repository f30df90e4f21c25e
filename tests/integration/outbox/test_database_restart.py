"""PostgreSQL restarted in the middle of a run: a real ``visitmail worker`` process keeps
delivering through the restart on its own, nothing is lost, and a message that reached
the server twice is flagged as a possible duplicate.

The test owns its PostgreSQL cluster (``tests.support.pg_cluster``): the shared server on
5432 is never restarted. The restart is triggered by progress at the sink (after a share
of the messages arrived), not by a sleep, so it lands mid-run on a fast or a slow machine.
"""

from __future__ import annotations

import asyncio
import collections
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bench.sink import Sink, start_sink
from tests.conftest import TEST_KEYS, make_settings
from tests.support.orgs import OrgFixture, new_org
from tests.support.outbox import configure_server, enqueue_many
from tests.support.pg_cluster import PgCluster
from tests.support.processes import cli_env
from visitmail.adapters.db import migrate
from visitmail.adapters.db.tables import OutboxMessageRow
from visitmail.domain.outbox import MessageStatus
from visitmail.domain.smtp_settings import Limits
from visitmail.runtime import Runtime, build_runtime

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("crash")]

#: Messages in the run; VISITMAIL_FAULT_MESSAGES lowers it for a quick local try.
MESSAGES = int(os.environ.get("VISITMAIL_FAULT_MESSAGES", "5000"))
RESTART_AT = 0.3  # share of the messages the sink has seen when the database restarts
LEASE_SECONDS = 2  # a message whose outcome was lost with the database is retried soon
LIMIT_SECONDS = 240


@pytest.fixture
def cluster() -> Iterator[PgCluster]:
    c = PgCluster.start()
    try:
        yield c
    finally:
        c.destroy()


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    # aiosmtpd counts a message only once its final dot arrived (see test_crash).
    s = await start_sink("aiosmtpd", record_message_ids=True)
    try:
        yield s
    finally:
        await s.close()


def _start_worker(url: str, tmp: Path, log: Path) -> subprocess.Popen[bytes]:
    env = cli_env(
        tmp,
        url,
        VISITMAIL_MASTER_KEYS=TEST_KEYS,
        VISITMAIL_SMTP_ALLOWED_NETWORKS="127.0.0.0/8",
        VISITMAIL_WORKER_LEASE_SECONDS=str(LEASE_SECONDS),
        VISITMAIL_WORKER_POLL_SECONDS="0.2",
        VISITMAIL_LOG_LEVEL="WARNING",
    )
    with log.open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "visitmail.cli", "worker", "--concurrency", "8"],
            env=env,
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


async def _status_counts(runtime: Runtime, org: OrgFixture) -> dict[MessageStatus, int]:
    """Counts by status; ``{}`` while the database is away (the test's own pool sees the
    restart too)."""
    try:
        async with runtime.uow() as uow:
            return dict(await uow.outbox.counts(org.organization.id))
    except Exception:
        return {}


async def _flags(runtime: Runtime) -> dict[str, bool]:
    async with runtime.uow() as uow:
        rows = (
            await uow.session.execute(
                select(OutboxMessageRow.message_id, OutboxMessageRow.possible_duplicate)
            )
        ).all()
    return {mid: dup for mid, dup in rows}


async def test_worker_delivers_everything_through_a_postgresql_restart(
    tmp_path: Path, cluster: PgCluster, sink: Sink
) -> None:
    began = time.monotonic()
    runtime = build_runtime(make_settings(cluster.url, tmp_path / "var"), fast_hashing=True)
    worker: subprocess.Popen[bytes] | None = None
    log = tmp_path / "worker.log"
    try:
        await migrate.upgrade(runtime.engine)
        org = await new_org(runtime, name="Restart Test")
        await configure_server(
            runtime,
            org,
            sink.port,
            limits=Limits(max_connections=4, max_messages_per_connection=1000),
        )
        message_ids = await enqueue_many(runtime, org, MESSAGES, prefix="restart")
        setup = time.monotonic() - began

        started = time.monotonic()
        worker = _start_worker(cluster.url, tmp_path, log)
        restart_after = int(MESSAGES * RESTART_AT)
        seen_at_restart: int | None = None
        restart_seconds = 0.0
        deadline = started + LIMIT_SECONDS
        while True:
            assert worker.poll() is None, f"the worker died:\n{log.read_text()[-3000:]}"
            if seen_at_restart is None and sink.received() >= restart_after:
                seen_at_restart = sink.received()
                t0 = time.monotonic()
                await asyncio.to_thread(cluster.restart)
                restart_seconds = time.monotonic() - t0
            counts = await _status_counts(runtime, org)
            if seen_at_restart is not None and counts.get(MessageStatus.SENT) == MESSAGES:
                break
            assert time.monotonic() < deadline, (
                f"after {LIMIT_SECONDS} s: {counts}, sink saw {sink.received()}\n"
                f"{log.read_text()[-3000:]}"
            )
            await asyncio.sleep(0.1)
        elapsed = time.monotonic() - started

        # The run really was cut in the middle: the restart came before the last message.
        assert seen_at_restart is not None and seen_at_restart < MESSAGES
        # The worker survived on its own: nothing restarted it.
        assert worker.poll() is None, log.read_text()[-3000:]

        await sink.stop()
        received = collections.Counter(sink.message_ids())
        assert set(received) == set(message_ids), "every Message-ID arrived, nothing else"
        flags = await _flags(runtime)
        twice = sorted(mid for mid, n in received.items() if n > 1)
        unflagged = [mid for mid in twice if not flags[mid]]
        assert unflagged == [], "a message that arrived twice is flagged as a possible duplicate"
        counts = await _status_counts(runtime, org)
        assert counts.get(MessageStatus.SENT) == MESSAGES, counts
        felt = sum(1 for line in log.read_text().splitlines() if "failed" in line or "lost" in line)
        print(
            f"\nsetup (migrate, enqueue) {setup:.1f} s; "
            f"{MESSAGES} messages in {elapsed:.1f} s; restart after {seen_at_restart} at the "
            f"sink took {restart_seconds:.1f} s; received {sum(received.values())}, "
            f"duplicates {len(twice)}, flagged {sum(flags.values())}; database errors the "
            f"worker logged and survived: {felt}"
        )
    finally:
        if worker is not None and worker.poll() is None:
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        await runtime.close()
