"""Autogenerate a migration against a scratch SQLite database at head.

Usage: .venv/bin/python scripts/new_migration.py "message"
"""

from __future__ import annotations

import asyncio
import sys
import tempfile

from alembic import command
from sqlalchemy import Connection

from visitmail.adapters.db.engine import create_engine
from visitmail.adapters.db.migrate import _config, upgrade


async def main(message: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp}/scratch.db")
        await upgrade(engine)

        def _rev(connection: Connection) -> None:
            command.revision(_config(connection), message=message, autogenerate=True)

        async with engine.begin() as conn:
            await conn.run_sync(_rev)
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
