"""The composition root: settings, database engines, key ring and hashers, built once per
process and shared by the web app, the CLI and the worker.

Units of work come from :meth:`Runtime.uow`: a writer by default, or ``read_only=True``
for pure reads. On a SQLite file the two use different engines (``adapters/db/engine.py``:
one writer connection for the whole process, several reader connections), so a GET never
waits for a write; on PostgreSQL (and an in-memory SQLite) both use the one engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from visitmail.adapters.crypto.keyring import (
    KeyRing,
    KeyRingError,
    create_file,
    load_file,
    parse_keys,
)
from visitmail.adapters.crypto.passwords import Argon2Hasher
from visitmail.adapters.db.engine import (
    create_engine,
    create_reader_engine,
    is_sqlite_file,
    session_factory,
)
from visitmail.adapters.db.uow import SqlUnitOfWork
from visitmail.config import ConfigError, Settings
from visitmail.logs import get_logger
from visitmail.services.identity import PrincipalCache
from visitmail.services.login import LoginPolicy

log = get_logger(__name__)

NOTIFY_CHANNEL = "visitmail_outbox"


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    keyring: KeyRing
    hasher: Argon2Hasher
    dummy_hash: str
    login_policy: LoginPolicy
    notes: list[str] = field(default_factory=list)
    wakers: list[Callable[[], None]] = field(default_factory=list)
    #: The SQLite reader engine; ``None`` where reads use ``engine`` (PostgreSQL).
    read_engine: AsyncEngine | None = None
    read_sessionmaker: async_sessionmaker[AsyncSession] | None = None
    principals: PrincipalCache = field(default_factory=PrincipalCache)

    def uow(self, *, read_only: bool = False) -> SqlUnitOfWork:
        """A unit of work. ``read_only``: for pure reads (GET routes, lookups); on SQLite it
        runs on a reader connection and any write in it fails. The default is the writer:
        keep its transactions short and free of slow work (rendering, SMTP, HTTP)."""
        if read_only and self.read_sessionmaker is not None:
            return SqlUnitOfWork(self.read_sessionmaker, read_only=True)
        return SqlUnitOfWork(
            self.sessionmaker,
            after_enqueue=self.wake_workers,
            after_identity_change=self.principals.clear,
            read_only=read_only,
        )

    # --- waking delivery workers -------------------------------------------------------

    def add_waker(self, waker: Callable[[], None]) -> None:
        self.wakers.append(waker)

    def remove_waker(self, waker: Callable[[], None]) -> None:
        if waker in self.wakers:
            self.wakers.remove(waker)

    def wake_workers(self) -> None:
        """Called after a commit that enqueued mail: workers in this process claim now."""
        for waker in list(self.wakers):
            waker()

    async def listen(self, waker: Callable[[], None]) -> None:
        """Call ``waker`` on every ``NOTIFY visitmail_outbox`` (PostgreSQL), so workers on
        other machines claim at once; reconnects after errors. SQLite has one process:
        the in-process wakers suffice. Runs until cancelled."""
        url = self.engine.url
        if url.get_backend_name() != "postgresql":
            await asyncio.Event().wait()
            return
        import asyncpg

        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        while True:
            try:
                conn = await asyncpg.connect(dsn)
                try:
                    await conn.add_listener(NOTIFY_CHANNEL, lambda *_args: waker())
                    waker()  # anything enqueued while we were not listening
                    while True:
                        await asyncio.sleep(30)
                        await conn.execute("SELECT 1")  # notice a dead connection
                finally:
                    await conn.close()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("listen connection lost", error=type(exc).__name__)
                await asyncio.sleep(2)

    async def database_ok(self) -> bool:
        try:
            async with (self.read_engine or self.engine).connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:  # any failure means "unreachable" to a health check
            return False
        return True

    async def close(self) -> None:
        """Close every pooled connection (the engines stay usable: a later use, e.g. on
        another event loop, opens fresh ones)."""
        await self.engine.dispose()
        if self.read_engine is not None:
            await self.read_engine.dispose()


def load_keyring(settings: Settings, *, create: bool, notes: list[str]) -> KeyRing:
    """Keys from ``VISITMAIL_MASTER_KEYS``, else the key file (created on first start)."""
    try:
        if settings.master_keys is not None:
            return parse_keys(
                settings.master_keys.get_secret_value(),
                source="VISITMAIL_MASTER_KEYS",
                separator=",",
            )
        path = settings.effective_key_file
        if not path.exists() and create:
            ring = create_file(path)
            notes.append(f"created the master key file {path} (mode 0600); back it up")
            return ring
        return load_file(path)
    except KeyRingError as exc:
        raise ConfigError(str(exc)) from None


def build_runtime(
    settings: Settings,
    *,
    create_key: bool = True,
    fast_hashing: bool = False,
    engine_factory: Callable[[str], AsyncEngine] = create_engine,
    reader_factory: Callable[[str], AsyncEngine] | None = create_reader_engine,
) -> Runtime:
    """``reader_factory``: the SQLite reader engine (``None``: reads use the writer too)."""
    notes: list[str] = []
    keyring = load_keyring(settings, create=create_key, notes=notes)
    url = settings.effective_database_url
    engine = engine_factory(url)
    read_engine = reader_factory(url) if reader_factory and is_sqlite_file(url) else None
    hasher = Argon2Hasher(fast=fast_hashing)
    policy = LoginPolicy(
        max_failures=settings.login_max_failures,
        window=timedelta(seconds=settings.login_window_seconds),
        session_lifetime=timedelta(hours=settings.session_hours),
    )
    return Runtime(
        settings=settings,
        engine=engine,
        sessionmaker=session_factory(engine),
        read_engine=read_engine,
        read_sessionmaker=session_factory(read_engine) if read_engine is not None else None,
        keyring=keyring,
        hasher=hasher,
        dummy_hash=hasher.hash("visitmail-dummy-password"),
        login_policy=policy,
        notes=notes,
    )
