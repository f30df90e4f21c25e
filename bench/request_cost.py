"""What one API request costs inside the server: SQL statements and CPU, per path.

    python -m bench.request_cost [--database sqlite|postgresql] [--requests 50]

The app runs in this process (``httpx.ASGITransport``, no sockets, no delivery worker), on a
fresh database with one organization, an event, a follow-up template, a mapping that sends
one email per export, and 300+ captured reports. For each path (capture, export, bulk
follow-up of 100 reports) it prints the statements per request, grouped by their first
words (with ``--history N``: after seeding N finished follow-ups, as the ``history``
scenario does), and the CPU seconds of this process per request (``time.process_time``: the client's
share is small but included). docs/benchmarks.md quotes it beside the py-spy profiles: it
says how many round trips to the database a request makes, which a profile cannot.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import re
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from bench.api_harness import Api
from bench.databases import DatabaseKind, fresh_database
from bench.scenarios.latency import mapping

_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE)\s+([a-z_]+)", re.IGNORECASE)


def statement_key(statement: str) -> str:
    """``SELECT outbox``, ``INSERT outbox_recipients``, ``UPDATE rate_windows``: the verb
    and the first table it names, which is what a profile of the send path needs."""
    words = statement.split()
    verb = words[0].upper() if words else "?"
    table = _TABLE.search(statement)
    return f"{verb} {table.group(1) if table else ' '.join(words[1:3])[:40]}"


def _count_statements(engine: Any, counts: Counter[str], seconds: dict[str, float]) -> None:
    """Count each statement (by :func:`statement_key`) and add up its wall time, driver
    round trip included."""
    from sqlalchemy import event

    started: list[float] = []

    def before(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        counts[statement_key(statement)] += 1
        started.append(time.perf_counter())

    def after(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        if started:
            key = statement_key(statement)
            seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - started.pop()

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    event.listen(engine.sync_engine, "after_cursor_execute", after)


class _WalPages:
    """Pages a SQLite writer wrote, counted in its write-ahead log: how many B-tree pages
    the requests dirtied. Unlike a time it does not depend on what else the machine does.
    Automatic checkpoints are switched off while counting so the log only grows; on
    PostgreSQL (shared WAL, other databases write too) nothing is counted."""

    def __init__(self, engine: Any, url: str) -> None:
        from visitmail.adapters.db.engine import is_sqlite_file

        self.engine = engine
        self.path = Path(url.removeprefix("sqlite:///") + "-wal") if is_sqlite_file(url) else None

    async def _pragma(self, sql: str) -> None:
        async with self.engine.connect() as connection:
            await connection.exec_driver_sql(sql)
            await connection.commit()

    async def stop_auto_checkpoints(self) -> None:
        if self.path is not None:
            await self._pragma("PRAGMA wal_autocheckpoint=0")  # the writer's one connection

    async def restart(self) -> None:
        if self.path is not None:
            async with self.engine.connect() as connection:  # outside any transaction
                raw = await connection.get_raw_connection()
                await raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    async def pages(self) -> int | None:
        if self.path is None or not self.path.exists():
            return None
        size = self.path.stat().st_size
        return max(0, size - 32) // (4096 + 24)  # WAL header; frame = header + page


async def measure(kind: DatabaseKind, requests: int, history: int = 0, bulks: int = 3) -> list[str]:
    from visitmail.adapters.db import migrate
    from visitmail.config import Settings
    from visitmail.runtime import build_runtime
    from visitmail.services import identity
    from visitmail.web.app import create_app

    lines: list[str] = []
    counts: Counter[str] = Counter()
    seconds: dict[str, float] = {}
    async with fresh_database(kind) as url:
        with tempfile.TemporaryDirectory(prefix="visitmail-cost-") as var:
            keys = "k1:" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
            settings = Settings(database_url=url, var_dir=Path(var), master_keys=keys)
            runtime = build_runtime(settings, create_key=False, fast_hashing=True)
            try:
                await migrate.upgrade(runtime.engine)
                _count_statements(runtime.engine, counts, seconds)
                if runtime.read_engine is not None:  # SQLite: reads have their own engine
                    _count_statements(runtime.read_engine, counts, seconds)
                async with runtime.uow() as uow:
                    created = await identity.create_organization(
                        uow, runtime.hasher, name="Cost", admin_email="admin@cost.example"
                    )
                headers = {"Authorization": f"Bearer {created.token}"}
                transport = httpx.ASGITransport(app=create_app(runtime))
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://cost", headers=headers
                ) as client:
                    api = Api(client)
                    await api.configure_smtp("127.0.0.1", 2525, connections=4)
                    event_id = await api.create_event()
                    template_id = await api.put_template(event_id)
                    await api.put_mapping(mapping(False))
                    if history:
                        from bench.api_history import seed_history

                        await seed_history(
                            url,
                            history,
                            organization_id=str(created.organization.id),
                            event_id=event_id,
                            template_id=template_id,
                            user_id=str(created.admin.id),
                        )
                    bulk_size = 100
                    ids = await api.capture_many(event_id, requests + bulks * bulk_size, run="cost")

                    async def capture(i: int) -> None:
                        await api.capture_many(event_id, 1, run=f"c{i}")

                    async def export(i: int) -> None:
                        reply = await client.post(f"/api/v1/reports/{ids[i]}/export")
                        reply.raise_for_status()

                    async def bulk(i: int) -> None:
                        start = requests + i * bulk_size
                        await api.bulk_follow_up(ids[start : start + bulk_size])

                    paths: list[tuple[str, Callable[[int], Awaitable[None]], int]] = [
                        ("capture", capture, requests),
                        ("export", export, requests),
                        (f"bulk follow-up of {bulk_size}", bulk, bulks),
                    ]
                    wal = _WalPages(runtime.engine, url)
                    await wal.stop_auto_checkpoints()
                    for label, call, n in paths:
                        await call(0)  # warm-up: first compile of each statement
                        await wal.restart()
                        counts.clear()
                        seconds.clear()
                        cpu, wall = time.process_time(), time.perf_counter()
                        for i in range(1, n):
                            await call(i)
                        per = (time.process_time() - cpu) / (n - 1)
                        per_wall = (time.perf_counter() - wall) / (n - 1)
                        total = sum(counts.values()) / (n - 1)
                        pages = await wal.pages()
                        written = "" if pages is None else f", {pages / (n - 1):.0f} pages written"
                        lines.append(
                            f"{kind} {label}: {total:.1f} statements{written}, "
                            f"{1000 * per:.1f} ms CPU, {1000 * per_wall:.1f} ms wall per request"
                        )
                        for s, c in counts.most_common():
                            ms = 1000 * seconds.get(s, 0.0) / (n - 1)
                            lines.append(f"    {c / (n - 1):5.2f} x {ms:7.2f} ms  {s}")
            finally:
                await runtime.close()
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument(
        "--history", type=int, default=0, help="finished follow-ups seeded first (bench.history)"
    )
    parser.add_argument(
        "--bulks", type=int, default=3, help="bulk requests of 100 (the first is a warm-up)"
    )
    args = parser.parse_args(argv)
    kind: DatabaseKind = args.database
    print(
        "\n".join(
            asyncio.run(measure(kind, max(2, args.requests), args.history, max(2, args.bulks)))
        )
    )


if __name__ == "__main__":
    main()
