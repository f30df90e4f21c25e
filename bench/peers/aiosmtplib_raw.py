"""``aiosmtplib-raw``: the ceiling for a Python sender.

K aiosmtplib connections, opened inside the measured window, each taking the next message
from the shared workload until none is left: no database, no durability, no retries.
Measures: wall time from opening the first connection until the last message's 250.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping
from importlib.metadata import version

from aiosmtplib import SMTP

from bench.peers.base import PeerResult, RunContext
from bench.workload import BenchMessage, Workload


class AiosmtplibRawPeer:
    """K pooled aiosmtplib connections sending pre-built bytes with ``sendmail``."""

    name = "aiosmtplib-raw"
    needs_database = False

    async def prepare(self, workload: Workload) -> Mapping[str, str]:
        return {"aiosmtplib": version("aiosmtplib")}

    async def run(self, ctx: RunContext) -> PeerResult:
        pending: Iterator[BenchMessage] = iter(ctx.workload.messages)
        accepted = 0
        last_accepted = 0.0

        async def connection() -> None:
            nonlocal accepted, last_accepted
            smtp = SMTP(
                hostname=ctx.sink_host,
                port=ctx.sink_port,
                use_tls=False,
                start_tls=False,
                timeout=60,
            )
            async with smtp:
                # The iterator is shared: each connection takes the next unsent message.
                for message in pending:
                    errors, _ = await smtp.sendmail(
                        message.sender, [message.recipient], message.raw
                    )
                    if not errors:
                        accepted += 1
                        last_accepted = time.perf_counter()

        started = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for _ in range(max(1, ctx.connections)):
                group.create_task(connection())
        seconds = (last_accepted or time.perf_counter()) - started
        return PeerResult(sent=accepted, seconds=seconds)
