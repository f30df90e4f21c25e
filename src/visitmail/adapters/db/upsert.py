"""``INSERT … ON CONFLICT DO NOTHING`` for SQLite and PostgreSQL, so that two workers
creating the same per-organization row at once never collide."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from visitmail.adapters.db.tables import Base


async def insert_ignore(session: AsyncSession, model: type[Base], values: dict[str, Any]) -> None:
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    await session.execute(module.insert(model).values(**values).on_conflict_do_nothing())
