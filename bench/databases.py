"""A fresh, empty database for each run of a peer that needs one (visitmail), so every run
starts from an empty outbox: a SQLite file in a temporary directory, or a throwaway
PostgreSQL database created next to ``VISITMAIL_BENCH_DATABASE_URL`` (default: the test
server, ``postgresql://postgres@127.0.0.1:5432/test``) and dropped afterwards."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import asyncpg
from sqlalchemy.engine import make_url

from bench.peers.base import PeerUnavailable

DatabaseKind = Literal["sqlite", "postgresql"]
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def base_postgres_url() -> str:
    return os.environ.get(
        "VISITMAIL_BENCH_DATABASE_URL",
        os.environ.get("VISITMAIL_TEST_DATABASE_URL", DEFAULT_POSTGRES),
    )


async def _admin(sql: str) -> None:
    base = make_url(base_postgres_url()).set(drivername="postgresql")
    conn = await asyncpg.connect(base.render_as_string(hide_password=False))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@asynccontextmanager
async def fresh_database(kind: DatabaseKind) -> AsyncIterator[str]:
    """Yield the URL of a new, empty database; remove it on exit. Raises
    ``PeerUnavailable`` if PostgreSQL cannot be reached."""
    if kind == "sqlite":
        directory = Path(tempfile.mkdtemp(prefix="visitmail-bench-db-"))
        try:
            yield f"sqlite:///{directory / 'visitmail.db'}"
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return
    name = f"vmbench_{uuid.uuid4().hex[:12]}"
    try:
        await _admin(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError) as e:
        raise PeerUnavailable(f"PostgreSQL at {make_url(base_postgres_url())!r}: {e}") from e
    try:
        yield make_url(base_postgres_url()).set(database=name).render_as_string(hide_password=False)
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
