"""SIGTERM and SIGINT to the real ``visitmail serve`` (uvicorn + the in-process worker) and
``visitmail worker`` processes, with a slow SMTP server whose replies the test holds back
behind a :class:`Gate`: the conversation in flight finishes, what waits goes back to the
queue at once for another worker, nothing stays leased, the process exits 0. Before the fix
``serve`` died from the signal uvicorn re-raised, leaving its message leased for 300 s and
retried as a possible duplicate."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_KEYS, make_settings
from tests.support.databases import create_postgres_database, drop_postgres_database, sqlite_url
from tests.support.orgs import OrgFixture, new_org
from tests.support.outbox import configure_server, enqueue, make_worker, outbox_rows, wait_for
from tests.support.processes import free_port
from tests.support.smtp_servers import Gate, Script, SmtpServer, start_smtp_server
from visitmail.adapters.db import migrate
from visitmail.domain.smtp_settings import Limits, Timeouts
from visitmail.runtime import Runtime, build_runtime

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("crash")]

PASSWORD = "shutdown-secret-Pa55"


@dataclass
class Setup:
    runtime: Runtime
    org: OrgFixture
    url: str
    tmp: Path


@pytest.fixture
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    backend = request.param
    if backend == "sqlite":
        yield sqlite_url(tmp_path)
        return
    url = await create_postgres_database()
    try:
        yield url
    finally:
        await drop_postgres_database(url)


async def _setup(url: str, tmp: Path, server: SmtpServer) -> Setup:
    runtime = build_runtime(make_settings(url, tmp / "var"), fast_hashing=True)
    await migrate.upgrade(runtime.engine)
    org = await new_org(runtime, name="Shutdown Test")
    await configure_server(
        runtime,
        org,
        server.port,
        username="sender@example.com",
        password=PASSWORD,
        limits=Limits(max_connections=1, max_messages_per_connection=50),
        timeouts=Timeouts(connect=10, command=600, overall=20),  # the test holds replies
    )
    return Setup(runtime, org, url, tmp)


def _start(command: str, setup: Setup, grace: float) -> tuple[subprocess.Popen[bytes], int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISITMAIL_")}
    env.update(
        VISITMAIL_DATABASE_URL=setup.url,
        VISITMAIL_VAR_DIR=str(setup.tmp / "var"),
        VISITMAIL_MASTER_KEYS=TEST_KEYS,
        VISITMAIL_SMTP_ALLOWED_NETWORKS="127.0.0.0/8",
        VISITMAIL_ALLOW_PLAINTEXT_AUTH="true",
        VISITMAIL_WORKER_CONCURRENCY="1",
        VISITMAIL_WORKER_POLL_SECONDS="0.2",
        VISITMAIL_SHUTDOWN_GRACE_SECONDS=str(grace),
        VISITMAIL_LOG_LEVEL="INFO",
    )
    port = free_port()
    args = ["serve", "--port", str(port)] if command == "serve" else ["worker"]
    log = (setup.tmp / "process.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "visitmail.cli", *args],
        env=env,
        cwd=setup.tmp,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    return proc, port


async def _exit_code(proc: subprocess.Popen[bytes], limit: float = 30) -> int:
    async with asyncio.timeout(limit):
        while proc.poll() is None:  # noqa: ASYNC110 (a child process, not an event)
            await asyncio.sleep(0.05)
    return proc.returncode


async def _serving(port: int) -> bool:
    try:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
    except httpx.HTTPError:
        return False


def _received(server: SmtpServer) -> collections.Counter[str]:
    return collections.Counter(str(m.parsed()["Message-ID"]) for m in server.recorder.messages)


async def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(
    ("command", "database", "sig"),
    [
        ("serve", "sqlite", signal.SIGTERM),
        ("serve", "postgresql", signal.SIGINT),
        ("worker", "postgresql", signal.SIGTERM),
        ("worker", "sqlite", signal.SIGINT),
    ],
    indirect=["database"],
)
async def test_a_signal_mid_data_finishes_that_message_and_releases_the_rest(
    command: str, database: str, sig: signal.Signals, tmp_path: Path
) -> None:
    gate = Gate(lambda n: n == 1)  # the first message's DATA reply waits for the test
    server = await start_smtp_server(
        credentials=("sender@example.com", PASSWORD),
        auth_require_tls=False,
        script=Script(hold_data=gate),
    )
    setup = await _setup(database, tmp_path, server)
    runtime, org = setup.runtime, setup.org
    queued = [await enqueue(runtime, org, [f"lead{i}@example.org"]) for i in range(4)]
    proc, port = _start(command, setup, grace=60)
    try:
        await asyncio.wait_for(gate.reached.wait(), 30)  # mid-DATA: the dot was sent
        if command == "serve":
            await wait_for(lambda: _serving(port), what="serve answers /healthz")
        proc.send_signal(sig)

        async def rest_released() -> bool:
            rows = await outbox_rows(runtime, org)
            waiting = [r for r in rows.values() if r.status == "queued"]
            return len(waiting) == 3 and all(
                r.lease_owner is None and r.attempts == 0 and not r.possible_duplicate
                for r in waiting
            )

        # given back while the process still waits for the first reply
        await wait_for(rest_released, what="the waiting messages released")
        assert proc.poll() is None
        if command == "serve":  # HTTP stopped taking requests

            async def closed() -> bool:
                return not await _serving(port)

            await wait_for(closed, what="HTTP closed")

        # another worker takes them at once (the lease is 300 s: no waiting for it)
        rival = make_worker(runtime, org, allow_plaintext_auth=True)
        rival_stop = asyncio.Event()
        rival_task = asyncio.create_task(rival.run(rival_stop))

        async def rest_sent() -> bool:
            return len(server.recorder.messages) == 3

        await wait_for(rest_sent, what="another worker sends the released messages")
        rival_stop.set()
        await rival_task
        assert proc.poll() is None  # still finishing the first conversation

        gate.open()
        assert await _exit_code(proc) == 0
    finally:
        await _stop(proc)
        await server.close()
        await runtime.close()

    rows = await outbox_rows(runtime, org)
    assert {r.status for r in rows.values()} == {"sent"}
    assert all(r.lease_owner is None and not r.possible_duplicate for r in rows.values())
    assert _received(server) == collections.Counter(mid for _, mid in queued)  # each once
    log = (tmp_path / "process.log").read_text()
    assert "shutdown: conversations ended" in log
    assert "finished=1" in log
    assert "released=3" in log
    assert PASSWORD not in log


@pytest.mark.parametrize(
    ("command", "database"),
    [("serve", "sqlite"), ("worker", "postgresql")],
    indirect=["database"],
)
async def test_a_conversation_that_outlasts_the_grace_period_is_cut_off_and_released(
    command: str, database: str, tmp_path: Path
) -> None:
    gate = Gate()  # no DATA is answered while the process runs
    server = await start_smtp_server(
        credentials=("sender@example.com", PASSWORD),
        auth_require_tls=False,
        script=Script(hold_data=gate),
    )
    setup = await _setup(database, tmp_path, server)
    runtime, org = setup.runtime, setup.org
    pk, message_id = await enqueue(runtime, org, ["late@example.org"])
    proc, _port = _start(command, setup, grace=0.5)
    try:
        await asyncio.wait_for(gate.reached.wait(), 30)
        proc.send_signal(signal.SIGTERM)
        assert await _exit_code(proc) == 0
    finally:
        await _stop(proc)

    try:
        row = (await outbox_rows(runtime, org))[pk]
        assert (row.lease_owner, row.lease_expires_at) == (None, None)  # no 300 s wait
        assert row.status in ("queued", "deferred")
        assert row.possible_duplicate  # its final dot had been sent: the server may have it
        log = (tmp_path / "process.log").read_text()
        assert "cut_after_data_flagged=1" in log
        assert PASSWORD not in log

        gate.open()
        await make_worker(
            runtime, org, allow_plaintext_auth=True
        ).run_until_idle()  # another worker, right away
        row = (await outbox_rows(runtime, org))[pk]
        assert (row.status, row.lease_owner) == ("sent", None)
        assert _received(server)[message_id] == 1
    finally:
        await server.close()
        await runtime.close()
