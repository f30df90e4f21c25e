"""Engine construction with the per-backend settings that make each one safe and fast.

SQLite (one process serves, WAL journal) gets **two engines**:

* the *writer* (:func:`create_engine`): a pool of exactly one connection, so every write
  transaction in the process runs on it, one after the other. A task that wants to write
  while another one holds it waits on the pool's asyncio queue (``pool_timeout``
  :data:`WRITER_WAIT_S`), never in SQLite's busy handler, which sleeps in steps of up to
  100 ms. Every transaction starts with ``BEGIN IMMEDIATE``, so a transaction that reads
  then writes never fails half-way with "database is locked" when *another process* (a
  CLI command while ``serve`` runs) writes: against other processes the busy timeout
  (:data:`SQLITE_BUSY_TIMEOUT_MS`) stays as the safety net.
* the *reader* (:func:`create_reader_engine`): several connections with a plain deferred
  ``BEGIN`` (a consistent snapshot per transaction) and ``PRAGMA query_only``. In WAL mode
  a reader never waits for the writer, and the writer never waits for readers.

Whoever holds the writer must not do slow work (rendering, SMTP, HTTP) inside its
transaction: every other write in the process queues behind it.

PostgreSQL: one asyncpg engine with a bounded pool (MVCC needs no reader split).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from visitmail.adapters.private_files import create_private_file

SQLITE_BUSY_TIMEOUT_MS = 30_000
#: How long a write waits for the single SQLite writer before it fails (seconds). Generous:
#: under load many short transactions queue; only a stuck holder should make one fail.
WRITER_WAIT_S = 60.0
#: Reader connections (each one is a thread of aiosqlite's), and how many more under load.
READER_POOL_SIZE = 4
READER_OVERFLOW = 4


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def is_sqlite_file(url: str) -> bool:
    """A SQLite database in a file: the only kind where separate reader connections see
    the writer's data (an in-memory database is private to its connection)."""
    if not is_sqlite(url):
        return False
    database = make_url(url).database
    return bool(database) and database != ":memory:" and "mode=memory" not in url


def create_engine(
    url: str, *, echo: bool = False, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS
) -> AsyncEngine:
    """An async engine for ``url`` (``sqlite+aiosqlite`` or ``postgresql+asyncpg``); for
    SQLite, the single-connection writer (see the module doc)."""
    if is_sqlite(url):
        _make_parent(url)
        engine = create_async_engine(
            url,
            echo=echo,
            connect_args={"timeout": busy_timeout_ms / 1000},
            pool_size=1,
            max_overflow=0,
            pool_timeout=WRITER_WAIT_S,
        )
        _configure_sqlite(engine, busy_timeout_ms=busy_timeout_ms, reader=False)
        return engine
    return create_async_engine(url, echo=echo, pool_size=10, max_overflow=10, pool_pre_ping=True)


def create_reader_engine(
    url: str, *, echo: bool = False, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS
) -> AsyncEngine:
    """The SQLite reader engine: deferred transactions on ``query_only`` connections.
    Only for a SQLite file (:func:`is_sqlite_file`); raises ``ValueError`` otherwise."""
    if not is_sqlite_file(url):
        raise ValueError("a reader engine is only for a SQLite database file")
    _make_parent(url)
    engine = create_async_engine(
        url,
        echo=echo,
        connect_args={"timeout": busy_timeout_ms / 1000},
        pool_size=READER_POOL_SIZE,
        max_overflow=READER_OVERFLOW,
        pool_timeout=WRITER_WAIT_S,
    )
    _configure_sqlite(engine, busy_timeout_ms=busy_timeout_ms, reader=True)
    return engine


def _make_parent(url: str) -> None:
    """A database file visitmail creates is private (0600 in a 0700 directory; SQLite's
    own default is 0644), and its -wal and -shm files follow the file's mode."""
    database = make_url(url).database
    if database and is_sqlite_file(url) and not database.startswith("file:"):
        create_private_file(Path(database))


def _configure_sqlite(engine: AsyncEngine, *, busy_timeout_ms: int, reader: bool) -> None:
    _render_table_hints(engine)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver; we emit BEGIN ourselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        if reader:
            cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    begin = "BEGIN" if reader else "BEGIN IMMEDIATE"

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)


def _render_table_hints(engine: AsyncEngine) -> None:
    """Render ``select(...).with_hint(table, "INDEXED BY ix", dialect_name="sqlite")`` as
    SQLite's ``FROM table INDEXED BY ix`` (SQLAlchemy's SQLite compiler drops table hints).
    Used where the plan must not depend on statistics nobody gathers on an embedded
    database; ``INDEXED BY`` also makes the statement fail loudly if the index is gone."""
    base: Any = engine.dialect.statement_compiler

    class HintingCompiler(base):  # type: ignore[misc]
        def get_from_hint_text(self, table: Any, text: str | None) -> str | None:
            return text

    engine.dialect.statement_compiler = HintingCompiler


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
