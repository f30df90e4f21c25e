"""Test databases: a SQLite file, or a fresh PostgreSQL database per test run (per xdist
worker), dropped at the end, so runs never disturb each other."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def base_postgres_url() -> str:
    return os.environ.get("VISITMAIL_TEST_DATABASE_URL", DEFAULT_PG)


async def create_postgres_database() -> str:
    """Create ``vmtest_<random>`` next to the base database; return its plain URL."""
    base = make_url(base_postgres_url())
    name = f"vmtest_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(base.set(drivername="postgresql").render_as_string(False))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return base.set(database=name).render_as_string(hide_password=False)


async def drop_postgres_database(url: str) -> None:
    target = make_url(url)
    base = make_url(base_postgres_url())
    conn = await asyncpg.connect(base.set(drivername="postgresql").render_as_string(False))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')
    finally:
        await conn.close()


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'visitmail.db'}"
