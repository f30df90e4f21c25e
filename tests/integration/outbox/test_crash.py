"""Nothing lost, nothing silently sent twice: real worker processes, killed with SIGKILL
while they deliver thousands of messages to Postfix's smtp-sink."""

from __future__ import annotations

import asyncio
import collections
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bench.sink import Sink, start_sink
from tests.conftest import TEST_KEYS, make_settings
from tests.support.databases import create_postgres_database, drop_postgres_database, sqlite_url
from tests.support.orgs import OrgFixture, new_org
from tests.support.outbox import build_mime, configure_server
from visitmail.adapters.db import migrate
from visitmail.adapters.db.tables import OutboxMessageRow
from visitmail.domain.outbox import MessageKind, MessageStatus
from visitmail.domain.smtp_settings import Limits
from visitmail.runtime import Runtime, build_runtime
from visitmail.services import outbox
from visitmail.services.outbox_ports import NewMessage, NewRecipient

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("crash")]

MESSAGES = 5000
LEASE_SECONDS = 2


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    # aiosmtpd records a message only once its final dot arrived (what "accepted" means).
    # smtp-sink's dump (-D) appends a transaction as it streams in, so a body cut off
    # before its dot -- a send that timed out on a loaded machine, which no server
    # delivers and visitmail rightly retries -- would count as received, and its retry as
    # an unflagged duplicate.
    s = await start_sink("aiosmtpd", record_message_ids=True)
    try:
        yield s
    finally:
        await s.close()


async def _setup(url: str, tmp: Path, sink: Sink) -> tuple[Runtime, OrgFixture, list[str]]:
    runtime = build_runtime(make_settings(url, tmp / "var"), fast_hashing=True)
    await migrate.upgrade(runtime.engine)
    org = await new_org(runtime, name="Crash Test")
    await configure_server(
        runtime,
        org,
        sink.port,
        limits=Limits(max_connections=4, max_messages_per_connection=1000),
    )
    message_ids = [f"<crash-{i}-{os.urandom(4).hex()}@example.com>" for i in range(MESSAGES)]
    for start in range(0, MESSAGES, 500):
        async with runtime.uow() as uow:
            for i in range(start, start + 500):
                mid = message_ids[i]
                await outbox.enqueue(
                    uow,
                    NewMessage(
                        organization_id=org.organization.id,
                        kind=MessageKind.NOTIFICATION,
                        idempotency_key=f"crash-{i}",
                        message_id=mid,
                        mail_from="sales@example.com",
                        subject=f"crash {i}",
                        mime=build_mime(mid, [f"lead{i}@example.org"]),
                        recipients=[NewRecipient(f"lead{i}@example.org")],
                    ),
                )
            await uow.commit()
    return runtime, org, message_ids


def _start_worker(url: str, tmp: Path, lease: float = LEASE_SECONDS) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISITMAIL_")}
    env.update(
        VISITMAIL_DATABASE_URL=url,
        VISITMAIL_VAR_DIR=str(tmp / "var"),
        VISITMAIL_MASTER_KEYS=TEST_KEYS,
        VISITMAIL_SMTP_ALLOWED_NETWORKS="127.0.0.0/8",
        VISITMAIL_WORKER_LEASE_SECONDS=str(lease),
        VISITMAIL_WORKER_POLL_SECONDS="0.2",
        VISITMAIL_LOG_LEVEL="WARNING",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "visitmail.cli", "worker", "--concurrency", "8"],
        env=env,
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _sent(runtime: Runtime, org: OrgFixture) -> int:
    async with runtime.uow() as uow:
        counts = await uow.outbox.counts(org.organization.id)
    return counts[MessageStatus.SENT]


async def _run(
    url: str, tmp: Path, sink: Sink, *, workers: int, kills: int, lease: float = LEASE_SECONDS
) -> tuple[Runtime, OrgFixture, list[str], int]:
    runtime, org, message_ids = await _setup(url, tmp, sink)
    procs = [_start_worker(url, tmp, lease) for _ in range(workers)]
    rng = random.Random(4)
    killed = 0
    deadline = time.monotonic() + 150
    try:
        while await _sent(runtime, org) < MESSAGES:
            assert time.monotonic() < deadline, f"only {await _sent(runtime, org)} sent"
            if killed < kills and await _sent(runtime, org) > (killed + 1) * MESSAGES // (
                kills + 2
            ):
                victim = rng.randrange(len(procs))
                procs[victim].send_signal(signal.SIGKILL)
                procs[victim].wait()
                killed += 1
                procs[victim] = _start_worker(url, tmp, lease)
            await asyncio.sleep(0.05)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
    await sink.stop()
    return runtime, org, message_ids, killed


async def _flagged(runtime: Runtime) -> dict[str, bool]:
    async with runtime.uow() as uow:
        rows = (
            await uow.session.execute(
                select(OutboxMessageRow.message_id, OutboxMessageRow.possible_duplicate)
            )
        ).all()
    return {mid: dup for mid, dup in rows}


async def _check(runtime: Runtime, org: OrgFixture, message_ids: list[str], sink: Sink) -> int:
    received = sink.message_ids()
    counts = collections.Counter(received)
    assert set(counts) == set(message_ids), "every Message-ID arrived, and nothing else"
    flagged = await _flagged(runtime)
    duplicates = [mid for mid, n in counts.items() if n > 1]
    assert all(flagged[mid] for mid in duplicates), "every duplicate is flagged"
    async with runtime.uow() as uow:
        final = await uow.outbox.counts(org.organization.id)
    assert final[MessageStatus.SENT] == MESSAGES
    print(
        f"received {len(received)}, duplicates {len(duplicates)}, flagged {sum(flagged.values())}"
    )
    return len(duplicates)


@pytest.mark.parametrize("backend_name", ["postgresql"])
async def test_two_workers_killed_repeatedly_on_postgresql(
    tmp_path: Path, sink: Sink, backend_name: str
) -> None:
    url = await create_postgres_database()
    runtime = None
    try:
        runtime, org, ids, killed = await _run(url, tmp_path, sink, workers=2, kills=4)
        assert killed == 4
        await _check(runtime, org, ids, sink)
    finally:
        if runtime is not None:
            await runtime.close()
        await drop_postgres_database(url)


async def test_one_worker_killed_repeatedly_on_sqlite(tmp_path: Path, sink: Sink) -> None:
    url = sqlite_url(tmp_path)
    runtime, org, ids, killed = await _run(url, tmp_path, sink, workers=1, kills=3)
    try:
        assert killed == 3
        await _check(runtime, org, ids, sink)
    finally:
        await runtime.close()


async def test_two_workers_without_kills_send_each_message_exactly_once(
    tmp_path: Path, sink: Sink
) -> None:
    url = await create_postgres_database()
    runtime = None
    try:
        # Nobody is killed, so nothing needs taking over: a 2 s lease would only let a
        # worker stalled on a loaded machine lose its messages to the other one (a
        # flagged duplicate, which this test forbids), racing the wall clock.
        runtime, org, ids, _ = await _run(url, tmp_path, sink, workers=2, kills=0, lease=300)
        assert await _check(runtime, org, ids, sink) == 0
        assert collections.Counter(sink.message_ids()).most_common(1)[0][1] == 1
        assert not any((await _flagged(runtime)).values())
    finally:
        if runtime is not None:
            await runtime.close()
        await drop_postgres_database(url)
