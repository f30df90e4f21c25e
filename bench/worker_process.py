"""Real ``visitmail worker`` processes for the ``scale`` and ``memory`` scenarios, and the
database they drain.

:func:`prepare_outbox` migrates a fresh database and creates one organization whose SMTP
settings point at the sink (or the delaying relay); :func:`bulk_insert` fills its outbox
with multi-row INSERTs (setup for big backlogs: the rows ``SqlOutbox.enqueue`` writes, one
recipient each); :func:`start_worker` starts ``.venv/bin/visitmail worker`` with the
environment an operator would set (``VISITMAIL_DATABASE_URL``, ``VISITMAIL_MASTER_KEYS``,
``VISITMAIL_SMTP_ALLOWED_NETWORKS`` = loopback); :class:`SentCounter` counts ``sent``
messages without taking SQLite's write lock (a read-only ``sqlite3`` connection; the
engine's own sessions begin with ``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sqlite3
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import asyncpg
from sqlalchemy.engine import make_url

from bench.peers.base import PeerUnavailable
from bench.peers.visitmail_peer import SENDER_DOMAIN, envelope_address, setup_organization
from bench.workload import build_messages

if TYPE_CHECKING:
    from visitmail.runtime import Runtime

READY_TIMEOUT = 60.0
INSERT_ROWS = 1000  # rows per multi-row INSERT
COMMIT_ROWS = 10_000  # rows per transaction


@dataclass
class Outbox:
    """A migrated database with one organization, ready for workers."""

    database_url: str  # sqlite:///… or postgresql://…, as an operator writes it
    keys: str  # VISITMAIL_MASTER_KEYS that sealed its settings
    organization_id: uuid.UUID
    var_dir: Path


async def prepare_outbox(
    database_url: str, var_dir: Path, keys: str, max_connections: int, host: str, port: int
) -> tuple[Runtime, Outbox]:
    """Migrate ``database_url`` and create the organization (SMTP to ``host:port``, no TLS,
    ``max_connections``); the caller closes the runtime."""
    runtime, principal = await setup_organization(
        database_url, var_dir, max_connections, host, port, keys=keys
    )
    return runtime, Outbox(database_url, keys, principal.organization_id, var_dir)


def _mime_parts() -> tuple[bytes, bytes]:
    """The workload's message split around its Message-ID, to stamp out distinct copies."""
    message = build_messages(1)[0]
    before, _, after = message.raw.partition(message.message_id.encode())
    return before, after


def _rows(
    organization_id: uuid.UUID, start: int, stop: int, now: datetime
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    before, after = _mime_parts()
    sender = f"bench-sender@{SENDER_DOMAIN}"
    for i in range(start, stop):
        pk = uuid.uuid4()
        message_id = f"<bulk-{i:07d}@{SENDER_DOMAIN}>"
        mime = before + message_id.encode() + after
        yield (
            {
                "id": pk,
                "organization_id": organization_id,
                "kind": "notification",
                "idempotency_key": message_id,
                "message_id": message_id,
                "mail_from": sender,
                "subject": "Visit report",
                "mime": mime,
                "size": len(mime),
                "priority": 0,
                "status": "queued",
                "not_before": now,
                "expires_at": None,
                "created_at": now,
                "updated_at": now,
                "attempts": 0,
                "possible_duplicate": False,
                "meta": {},
            },
            {
                "message_pk": pk,
                "organization_id": organization_id,
                "address": envelope_address(f"colleague-{i % 97:02d}@bench.visitmail.invalid"),
                "role": "to",
                "status": "pending",
                "updated_at": now,
            },
        )


async def bulk_insert(runtime: Runtime, organization_id: uuid.UUID, n: int) -> None:
    """Put ``n`` queued messages (~5.4 KB, one recipient each) into the outbox with
    multi-row INSERTs of ``INSERT_ROWS``, ``COMMIT_ROWS`` per transaction."""
    from sqlalchemy import Table, insert

    from visitmail.adapters.db.tables import OutboxMessageRow, OutboxRecipientRow

    messages = cast(Table, OutboxMessageRow.__table__)
    recipients = cast(Table, OutboxRecipientRow.__table__)
    now = datetime.now(UTC)
    for start in range(0, n, COMMIT_ROWS):
        async with runtime.engine.begin() as conn:
            stop = min(n, start + COMMIT_ROWS)
            for chunk in range(start, stop, INSERT_ROWS):
                pairs = list(_rows(organization_id, chunk, min(stop, chunk + INSERT_ROWS), now))
                await conn.execute(insert(messages).values([m for m, _ in pairs]))
                await conn.execute(insert(recipients).values([r for _, r in pairs]))


class SentCounter:
    """Counts the outbox's ``sent`` messages from outside the workers."""

    def __init__(self, database_url: str) -> None:
        self._url = make_url(database_url)
        self._pg: asyncpg.Connection | None = None

    async def __aenter__(self) -> SentCounter:
        if self._url.get_backend_name() == "postgresql":
            dsn = self._url.set(drivername="postgresql").render_as_string(hide_password=False)
            self._pg = await asyncpg.connect(dsn)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._pg is not None:
            await self._pg.close()

    def _sqlite_count(self, sql: str) -> int:
        path = self._url.database
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as conn:
            return int(conn.execute(sql).fetchone()[0])

    async def count(self, status: str = "sent") -> int:
        sql = f"SELECT count(*) FROM outbox_messages WHERE status = '{status}'"  # noqa: S608
        if self._pg is not None:
            return int(await self._pg.fetchval(sql))
        return await asyncio.to_thread(self._sqlite_count, sql)

    async def listeners(self) -> int:
        """PostgreSQL connections whose last statement was a LISTEN (workers ready to be
        woken); 0 on SQLite."""
        if self._pg is None:
            return 0
        return int(
            await self._pg.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query ILIKE 'LISTEN%'"
            )
        )


def visitmail_binary() -> str:
    """The ``visitmail`` console script of this environment. Raises ``PeerUnavailable``."""
    beside = Path(sys.executable).parent / "visitmail"
    if beside.exists():
        return str(beside)
    found = shutil.which("visitmail")
    if found is None:
        raise PeerUnavailable("the `visitmail` command is not installed in this environment")
    return found


@dataclass
class WorkerProcess:
    """One ``visitmail worker`` process; its stdout/stderr go to files in ``var_dir``."""

    process: asyncio.subprocess.Process
    stdout: Path
    stderr: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    async def wait_ready(self, within: float = READY_TIMEOUT) -> None:
        """Until it printed its start line. Raises ``RuntimeError`` with its stderr if it
        exits or does not start in time."""
        deadline = time.monotonic() + within
        # Another process writes the file: polling it is the only way to wait.
        while time.monotonic() < deadline:
            if b"visitmail worker" in self.stdout.read_bytes():
                return
            if self.process.returncode is not None:
                break
            await asyncio.sleep(0.05)
        raise RuntimeError(f"visitmail worker did not start: {self.tail()}")

    def tail(self, chars: int = 400) -> str:
        text = self.stderr.read_text(errors="replace").strip()
        return text[-chars:] or f"exit status {self.process.returncode}"

    def memory_kb(self) -> tuple[int, int] | None:
        """``(VmRSS, VmHWM)`` in kB from ``/proc/PID/status``; None once it is gone."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        values: dict[str, int] = {}
        for line in status.splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
        if len(values) < 2:
            return None
        return values["VmRSS"], values["VmHWM"]

    async def stop(self, grace: float = 30.0) -> int:
        """SIGTERM (the worker finishes or releases what it holds), SIGKILL after
        ``grace``; return the exit status."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), grace)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        return int(self.process.returncode or 0)


async def start_worker(outbox: Outbox, concurrency: int | None, index: int = 0) -> WorkerProcess:
    """Start ``visitmail worker [--concurrency N]`` on ``outbox``'s database."""
    binary = visitmail_binary()
    env = {
        **os.environ,
        "VISITMAIL_DATABASE_URL": outbox.database_url,
        "VISITMAIL_MASTER_KEYS": outbox.keys,
        "VISITMAIL_VAR_DIR": str(outbox.var_dir),
        "VISITMAIL_SMTP_ALLOWED_NETWORKS": "127.0.0.0/8",
        "VISITMAIL_LOG_LEVEL": "WARNING",
    }
    argv = [binary, "worker"]
    if concurrency is not None:
        argv += ["--concurrency", str(concurrency)]
    stdout = outbox.var_dir / f"worker-{index}.out"
    stderr = outbox.var_dir / f"worker-{index}.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=outbox.var_dir,  # no stray .env is read
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    return WorkerProcess(process, stdout, stderr)
