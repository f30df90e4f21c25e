"""Why row ids are time-ordered (``visitmail.domain.ids``): pages dirtied per insert of 100
rows into a table shaped like ``follow_up_sends`` (a primary key and two indexes that lead
with row ids), empty and with a history, with random (v4) or time-ordered (v7) ids.

    python -m bench.key_locality [--history 100000] [--database sqlite|postgresql]

Counts, not times, so the figures do not depend on what else the machine does: SQLite's
pages written to the write-ahead log (automatic checkpoints off), PostgreSQL's "buffers
dirtied" from ``EXPLAIN (ANALYZE, BUFFERS)`` after a checkpoint. docs/benchmarks.md quotes
the result.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from visitmail.domain.ids import new_id

CHUNK = 100
CHUNKS = 10
_COLUMNS = "(id, org, report, tpl, seq, status, outbox, address)"
# Constant SQL; the values of the PostgreSQL insert are UUIDs and addresses made here.
_INSERT = f"INSERT INTO s {_COLUMNS} VALUES (?,?,?,?,?,?,?,?)"  # noqa: S608
_SCHEMA = (
    "CREATE TABLE s (id {uuid} PRIMARY KEY, org {uuid}, report {uuid}, tpl {uuid}, seq int, "
    "status text, outbox {uuid}, address text)",
    "CREATE UNIQUE INDEX uq ON s (report, tpl, seq)",
    "CREATE INDEX ix ON s (org, report)",
)

Ids = Callable[[datetime], uuid.UUID]


def _random(_at: datetime) -> uuid.UUID:
    return uuid.uuid4()


def _ordered(at: datetime) -> uuid.UUID:
    return new_id(at=at)


KINDS: dict[str, Ids] = {"random (v4)": _random, "time-ordered (v7)": _ordered}


def _rows(
    ids: Ids, count: int, start: datetime, span: timedelta, tag: str
) -> list[tuple[str, ...]]:
    org, tpl = uuid.UUID(int=1), uuid.UUID(int=2)
    rows: list[tuple[str, ...]] = []
    for i in range(count):
        at = start + span * i / max(count, 1)
        rows.append(
            (
                str(ids(at)),
                str(org),
                str(ids(at)),
                str(tpl),
                "1",
                "sent",
                str(ids(at)),
                f"{tag}{i}@x",
            )
        )
    return rows


def sqlite_pages(ids: Ids, history: int) -> float:
    """Median WAL pages written per committed insert of :data:`CHUNK` rows."""
    with tempfile.TemporaryDirectory(prefix="visitmail-keys-") as directory:
        path = Path(directory) / "k.db"
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA wal_autocheckpoint=0")
        for statement in _SCHEMA:
            db.execute(statement.format(uuid="char(36)"))
        past = datetime.now(UTC) - timedelta(days=20)
        db.execute("BEGIN")
        db.executemany(
            _INSERT,
            _rows(ids, history, past, timedelta(days=20), "h"),
        )
        db.execute("COMMIT")
        pages = []
        for chunk in range(CHUNKS):
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                _INSERT,
                _rows(ids, CHUNK, datetime.now(UTC), timedelta(0), f"c{chunk}-"),
            )
            db.execute("COMMIT")
            size = Path(f"{path}-wal").stat().st_size
            pages.append((size - 32) // (4096 + 24))
        db.close()
        return statistics.median(pages)


async def postgresql_buffers(ids: Ids, history: int) -> float:
    """Median buffers dirtied per insert of :data:`CHUNK` rows, after a checkpoint."""
    import asyncpg

    from bench.databases import fresh_database

    async with fresh_database("postgresql") as url:
        db = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
        try:
            for statement in _SCHEMA:
                await db.execute(statement.format(uuid="uuid"))
            past = datetime.now(UTC) - timedelta(days=20)
            rows = _rows(ids, history, past, timedelta(days=20), "h")
            await db.copy_records_to_table(
                "s", records=[(*r[:4], 1, *r[5:]) for r in rows], columns=_COLUMNS[1:-1].split(", ")
            )
            await db.execute("VACUUM ANALYZE s")
            dirtied = []
            for chunk in range(CHUNKS):
                await db.execute("CHECKPOINT")
                values = ",".join(
                    f"('{a}','{b}','{c}','{d}',1,'queued','{g}','{h}')"
                    for a, b, c, d, _e, _f, g, h in _rows(
                        ids, CHUNK, datetime.now(UTC), timedelta(0), f"c{chunk}-"
                    )
                )
                explain = "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY OFF) "
                plan = await db.fetch(f"{explain}INSERT INTO s {_COLUMNS} VALUES {values}")  # noqa: S608
                text = " ".join(str(r[0]) for r in plan)
                found = [int(x.split("=")[1]) for x in text.split() if x.startswith("dirtied=")]
                dirtied.append(sum(found))
            return statistics.median(dirtied)
        finally:
            await db.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--history", type=int, default=100_000)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args(argv)
    unit = "WAL pages" if args.database == "sqlite" else "buffers dirtied"
    for history in (0, args.history):
        for name, ids in KINDS.items():
            if args.database == "sqlite":
                value = sqlite_pages(ids, history)
            else:
                value = asyncio.run(postgresql_buffers(ids, history))
            label = f"{args.database} history={history:>7} {name:>18}"
            print(f"{label}: {value:6.0f} {unit} per {CHUNK} rows")


if __name__ == "__main__":
    main()
