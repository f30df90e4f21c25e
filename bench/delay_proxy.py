"""A TCP proxy that delays each direction by a fixed time: a relay "far away" on loopback.

Between the peers and the sink (``relay`` and ``scale`` scenarios). Every chunk read from
one side is written to the other side ``delay`` seconds after it *arrived*, in arrival
order. Chunks are not serialized behind each other's timers: a pipelined burst (MAIL, RCPT,
DATA written together, or several chunks of one message) costs one delay, not one per
chunk, exactly as a long wire would. A round trip through the proxy therefore costs
``2 * delay`` plus the timer's resolution (about 1 ms: the event loop's ``epoll`` timeout
is in whole milliseconds).

A connection's close (or EOF) travels the same way: the other side is closed ``delay``
after it happened, once everything before it was written.

It runs in its own process (``python -m bench.delay_proxy``), so its CPU time is not spent
in the event loop of a peer under measurement (the visitmail peer runs in the bench
process). :func:`start_delay_proxy` starts it and returns its port; :meth:`stop` returns
what it saw (connections, peak concurrent connections, bytes each way), which the reports
use to show how many connections a peer really opened.

    proxy = await start_delay_proxy("127.0.0.1", sink_port, delay=0.010)
    ...  # connect to proxy.host / proxy.port
    stats = await proxy.stop()
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
_REPO_ROOT = Path(__file__).resolve().parent.parent
_START_TIMEOUT = 10.0


@dataclass
class ProxyStats:
    """What the proxy saw over its life."""

    connections: int = 0
    open: int = 0
    peak_open: int = 0
    bytes_up: int = 0  # client -> server
    bytes_down: int = 0  # server -> client
    failed_upstream: int = 0

    def to_json(self) -> dict[str, int]:
        return {
            "connections": self.connections,
            "peak_open": self.peak_open,
            "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down,
            "failed_upstream": self.failed_upstream,
        }


class _DelayedWriter:
    """One direction of one connection: chunks queued with their due time, written when
    due, in order. One timer at a time, always for the head of the queue; everything due
    when it fires is written at once."""

    def __init__(self, loop: asyncio.AbstractEventLoop, delay: float) -> None:
        self._loop = loop
        self._delay = delay
        self._queue: deque[tuple[float, bytes | None]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._target: asyncio.Transport | None = None
        self._closed = False

    def attach(self, target: asyncio.Transport) -> None:
        self._target = target
        if self._queue and self._timer is None:
            self._release()

    def push(self, data: bytes | None) -> None:
        """Queue ``data`` (None: close the target) to be written ``delay`` from now."""
        if self._closed:
            return
        due = self._loop.time() + self._delay
        self._queue.append((due, data))
        if self._timer is None and self._target is not None:
            self._timer = self._loop.call_at(due, self._release)

    def _release(self) -> None:
        self._timer = None
        target = self._target
        if target is None:
            return
        now = self._loop.time()
        while self._queue and self._queue[0][0] <= now:
            _, data = self._queue.popleft()
            if data is None:
                self._closed = True
                self._queue.clear()
                target.close()  # writes what is buffered, then closes
                return
            if not target.is_closing():
                target.write(data)
        if self._queue:
            self._timer = self._loop.call_at(self._queue[0][0], self._release)

    def abort(self) -> None:
        self._closed = True
        self._queue.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _Upstream(asyncio.Protocol):
    """The proxy's connection to the server; what it reads goes down to the client."""

    def __init__(self, link: _Client) -> None:
        self._link = link

    def data_received(self, data: bytes) -> None:
        self._link.stats.bytes_down += len(data)
        self._link.down.push(data)

    def eof_received(self) -> bool | None:
        self._link.down.push(None)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._link.down.push(None)


class _Client(asyncio.Protocol):
    """A client's connection to the proxy; what it reads goes up to the server."""

    def __init__(
        self,
        target: tuple[str, int],
        delay: float,
        stats: ProxyStats,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._target = target
        self.stats = stats
        self.up = _DelayedWriter(loop, delay)
        self.down = _DelayedWriter(loop, delay)
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._connector: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self.down.attach(transport)
        self.stats.connections += 1
        self.stats.open += 1
        self.stats.peak_open = max(self.stats.peak_open, self.stats.open)
        self._connector = self._loop.create_task(self._connect())

    async def _connect(self) -> None:
        try:
            upstream, _ = await self._loop.create_connection(
                lambda: _Upstream(self), self._target[0], self._target[1]
            )
        except OSError:
            self.stats.failed_upstream += 1
            if self._transport is not None:
                self._transport.close()
            return
        self.up.attach(upstream)

    def data_received(self, data: bytes) -> None:
        self.stats.bytes_up += len(data)
        self.up.push(data)

    def eof_received(self) -> bool | None:
        self.up.push(None)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.stats.open -= 1
        self.up.push(None)


async def serve(
    target_host: str, target_port: int, delay: float, *, host: str = HOST, port: int = 0
) -> tuple[asyncio.Server, ProxyStats]:
    """Listen on ``host:port`` (0: any free port) and forward to the target, delayed."""
    loop = asyncio.get_running_loop()
    stats = ProxyStats()
    server = await loop.create_server(
        lambda: _Client((target_host, target_port), delay, stats, loop), host, port
    )
    return server, stats


async def _main(args: argparse.Namespace) -> None:
    server, stats = await serve(args.target_host, args.target_port, args.delay_ms / 1000)
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"port={port}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    sys.stdout.write(json.dumps(stats.to_json()) + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.delay_proxy")
    parser.add_argument("--target-host", default=HOST)
    parser.add_argument("--target-port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=10.0, help="each direction")
    asyncio.run(_main(parser.parse_args(argv)))


class ProxyUnavailable(RuntimeError):
    """The proxy process did not start; the message says why."""


@dataclass
class RunningProxy:
    """A proxy process: connect to ``host:port``; ``stop`` ends it and returns its stats."""

    host: str
    port: int
    delay: float
    process: asyncio.subprocess.Process
    stats: dict[str, Any] = field(default_factory=dict)

    async def stop(self) -> dict[str, Any]:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                out, _ = await asyncio.wait_for(self.process.communicate(), 10)
            except TimeoutError:
                self.process.kill()
                out, _ = await self.process.communicate()
            lines = out.decode(errors="replace").strip().splitlines()
            if lines:
                try:
                    self.stats = json.loads(lines[-1])
                except ValueError:
                    self.stats = {}
        return self.stats


async def start_delay_proxy(target_host: str, target_port: int, delay: float) -> RunningProxy:
    """Start a proxy process in front of ``target_host:target_port``, delaying each
    direction by ``delay`` seconds. Raises :class:`ProxyUnavailable`."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(_REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    argv = [sys.executable, "-m", "bench.delay_proxy", "--target-host", target_host]
    argv += ["--target-port", str(target_port), "--delay-ms", str(delay * 1000)]
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), _START_TIMEOUT)
    except TimeoutError:
        line = b""
    if not line.startswith(b"port="):
        if process.returncode is None:
            process.kill()
        _, err = await process.communicate()
        raise ProxyUnavailable(f"delay proxy did not start: {err.decode(errors='replace')[-300:]}")
    return RunningProxy(HOST, int(line[5:].strip()), delay, process)


if __name__ == "__main__":
    main(sys.argv[1:])
