"""The delaying relay: every chunk leaves ``delay`` after it arrived, in order, and a burst
costs one delay, not one per chunk (on the test's own clock); bytes and closes pass
through a real proxy intact."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import pytest

from bench.delay_proxy import _DelayedWriter, serve, start_delay_proxy

pytestmark = pytest.mark.xdist_group("bench")

DELAY = 0.010


class FakeLoop:
    """The two things ``_DelayedWriter`` asks of a loop, on a clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[tuple[float, Callable[[], None]]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        self.timers.append((when, callback))
        return cast(asyncio.TimerHandle, _Handle())

    def advance_to(self, t: float) -> None:
        """Fire every timer due by ``t``, earliest first, each at its own time."""
        while due := [timer for timer in self.timers if timer[0] <= t]:
            timer = min(due, key=lambda timer: timer[0])
            self.timers.remove(timer)
            self.now = max(self.now, timer[0])
            timer[1]()
        self.now = max(self.now, t)


class _Handle:
    """The timer handle the proxy may cancel; remembers that it did."""

    cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Recorder:
    """A transport that notes what was written when."""

    def __init__(self, loop: FakeLoop) -> None:
        self.loop = loop
        self.writes: list[tuple[float, bytes]] = []
        self.closed_at: float | None = None

    def write(self, data: bytes) -> None:
        self.writes.append((self.loop.now, data))

    def is_closing(self) -> bool:
        return self.closed_at is not None

    def close(self) -> None:
        self.closed_at = self.loop.now


def writer(loop: FakeLoop) -> tuple[_DelayedWriter, Recorder]:
    delayed = _DelayedWriter(cast(asyncio.AbstractEventLoop, loop), DELAY)
    target = Recorder(loop)
    delayed.attach(cast(Any, target))
    return delayed, target


def test_a_pipelined_burst_costs_one_delay_not_one_per_chunk() -> None:
    loop = FakeLoop()
    delayed, target = writer(loop)
    for i, chunk in enumerate((b"MAIL FROM:<a>\r\n", b"RCPT TO:<b>\r\n", b"DATA\r\n")):
        loop.now = i * 0.001
        delayed.push(chunk)
    loop.advance_to(1.0)
    assert [data for _, data in target.writes] == [
        b"MAIL FROM:<a>\r\n",
        b"RCPT TO:<b>\r\n",
        b"DATA\r\n",
    ]
    assert [at for at, _ in target.writes] == pytest.approx([0.010, 0.011, 0.012])


def test_nothing_leaves_before_its_delay_and_order_is_kept() -> None:
    loop = FakeLoop()
    delayed, target = writer(loop)
    delayed.push(b"one")
    loop.advance_to(0.005)
    delayed.push(b"two")
    loop.advance_to(0.0099)
    assert target.writes == []
    loop.advance_to(0.010)
    assert [data for _, data in target.writes] == [b"one"]
    loop.advance_to(0.015)
    assert [data for _, data in target.writes] == [b"one", b"two"]


def test_a_close_follows_the_data_before_it_by_the_same_delay() -> None:
    loop = FakeLoop()
    delayed, target = writer(loop)
    delayed.push(b"221 bye\r\n")
    loop.now = 0.002
    delayed.push(None)
    loop.advance_to(0.011)
    assert target.closed_at is None
    loop.advance_to(0.012)
    assert target.closed_at == pytest.approx(0.012)
    assert [data for _, data in target.writes] == [b"221 bye\r\n"]


async def _echo_server() -> asyncio.Server:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    return await asyncio.start_server(echo, "127.0.0.1", 0)


async def test_bytes_pass_through_intact_and_a_close_reaches_the_other_side() -> None:
    echo = await _echo_server()
    proxy, stats = await serve("127.0.0.1", echo.sockets[0].getsockname()[1], DELAY)
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", proxy.sockets[0].getsockname()[1]
        )
        payload = bytes(range(256)) * 400  # 100 KB: many chunks
        writer.write(payload)
        await writer.drain()
        received = await reader.readexactly(len(payload))
        writer.write_eof()
        assert await reader.read() == b""  # the server's close came through
        writer.close()
        assert received == payload
        assert stats.connections == 1 and stats.peak_open == 1
        assert stats.bytes_up == stats.bytes_down == len(payload)
    finally:
        proxy.close()
        echo.close()


async def test_the_proxy_process_forwards_and_reports_its_connections() -> None:
    echo = await _echo_server()
    proxy = await start_delay_proxy("127.0.0.1", echo.sockets[0].getsockname()[1], DELAY)
    try:
        for _ in range(2):
            reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
            writer.write(b"EHLO bench\r\n")
            assert await reader.readexactly(12) == b"EHLO bench\r\n"
            writer.close()
            await writer.wait_closed()
    finally:
        stats = await proxy.stop()
        echo.close()
    assert stats["connections"] == 2
    assert stats["bytes_up"] == stats["bytes_down"] == 24
