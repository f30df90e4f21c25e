"""The fallback sink: aiosmtpd in its own process, used only where Postfix's smtp-sink is
not installed (see ``bench.sink``). It accepts every message, appends ``mesg=N`` to the
counter file after each one (as ``smtp-sink -c`` does) and, if asked, the Message-ID of
each message to an ids file (``Message-ID: <...>`` lines). It prints ``port=N`` once it
listens, then runs until SIGTERM.

It is slower than smtp-sink, so runs against it are comparable only with each other.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
from contextlib import ExitStack
from typing import IO

from aiosmtpd.smtp import SMTP, Envelope, Session

_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


class CountingHandler:
    """aiosmtpd handler: count each message; optionally record its Message-ID."""

    def __init__(self, counter: IO[bytes], ids: IO[bytes] | None) -> None:
        self.count = 0
        self._counter = counter
        self._ids = ids

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        self.count += 1
        if self._ids is not None:
            content = envelope.original_content or b""
            header = content.split(b"\r\n\r\n", 1)[0]
            match = _MESSAGE_ID.search(header)
            # The same line smtp-sink's dump has, so one parser reads both (bench.sink).
            self._ids.write(b"Message-ID: " + (match.group(1) if match else b"<none>") + b"\n")
            self._ids.flush()
        self._counter.write(b"mesg=%d\n" % self.count)
        self._counter.flush()
        return "250 2.0.0 Ok: queued"


async def serve(host: str, port: int, counter: IO[bytes], ids: IO[bytes] | None) -> None:
    """Serve until SIGTERM or SIGINT; print ``port=N`` once listening."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    handler = CountingHandler(counter, ids)
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="bench-sink", data_size_limit=None),
        host=host,
        port=port,
        backlog=1000,
    )
    bound = server.sockets[0].getsockname()[1]
    print(f"port={bound}", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--counter-file", required=True)
    parser.add_argument("--ids-file")
    args = parser.parse_args()
    with ExitStack() as files:
        counter = files.enter_context(open(args.counter_file, "ab"))
        ids = files.enter_context(open(args.ids_file, "ab")) if args.ids_file else None
        asyncio.run(serve(args.host, args.port, counter, ids))


if __name__ == "__main__":
    main()
