"""Connections to one organization's server, reused across messages.

At most ``limits.max_connections`` open at once (a semaphore), each used for at most
``limits.max_messages_per_connection`` messages, closed after ``idle_seconds`` unused.
:meth:`ConnectionPool.abort` (shutdown out of time) drops every connection, busy or idle,
and refuses new ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from visitmail.adapters.smtp.session import SessionLost, SmtpSession

Opener = Callable[[], Awaitable[SmtpSession]]


@dataclass
class PooledConnection:
    session: SmtpSession
    sent: int = 0
    last_used: float = field(default_factory=time.monotonic)

    @property
    def fresh(self) -> bool:
        return self.sent == 0


async def close_quietly(session: SmtpSession, grace: float = 5.0) -> None:
    """QUIT politely, or drop the connection; never raises."""
    await session.quit(grace)


class ConnectionPool:
    def __init__(
        self, opener: Opener, *, max_connections: int, max_messages: int, idle_seconds: float
    ) -> None:
        self._opener = opener
        self._slots = asyncio.Semaphore(max(1, max_connections))
        self._idle: list[PooledConnection] = []
        self._max_messages = max(1, max_messages)
        self._idle_seconds = idle_seconds
        self._closing: set[asyncio.Task[None]] = set()
        self._handed: dict[int, PooledConnection] = {}  # by id(): connections in use
        self._aborted = False

    async def acquire(self) -> PooledConnection:
        """A connection for one message; opening one may raise the opener's errors, and
        :class:`SessionLost` once the pool was aborted."""
        if self._aborted:
            raise SessionLost("visitmail is shutting down")
        await self._slots.acquire()
        now = time.monotonic()
        conn: PooledConnection | None = None
        while self._idle and conn is None:
            candidate = self._idle.pop()
            if candidate.session.connected and now - candidate.last_used < self._idle_seconds:
                conn = candidate
            else:
                self._close_later(candidate.session)
        if conn is None:
            try:
                conn = PooledConnection(await self._opener())
            except BaseException:
                self._slots.release()
                raise
        if self._aborted:  # aborted while this one was being opened
            conn.session.abort()
            self._slots.release()
            raise SessionLost("visitmail is shutting down")
        self._handed[id(conn)] = conn
        return conn

    def abort(self) -> None:
        """Drop every connection now, busy ones included, and open no new one."""
        self._aborted = True
        for conn in [*self._handed.values(), *self._idle]:
            conn.session.abort()
        self._idle = []

    def release(self, conn: PooledConnection, *, reusable: bool) -> None:
        self._handed.pop(id(conn), None)
        conn.last_used = time.monotonic()
        if (
            reusable
            and not self._aborted
            and conn.session.connected
            and conn.sent < self._max_messages
        ):
            self._idle.append(conn)
        else:
            self._close_later(conn.session)
        self._slots.release()

    def _close_later(self, session: SmtpSession) -> None:
        task = asyncio.get_running_loop().create_task(close_quietly(session))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def close_idle(self, older_than: float) -> None:
        now = time.monotonic()
        keep = []
        for conn in self._idle:
            if now - conn.last_used >= older_than:
                self._close_later(conn.session)
            else:
                keep.append(conn)
        self._idle = keep

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        await asyncio.gather(*(close_quietly(c.session) for c in idle))
        if self._closing:
            with contextlib.suppress(Exception):
                await asyncio.gather(*self._closing, return_exceptions=True)
