"""Alembic environment. visitmail runs migrations programmatically (``visitmail migrate``),
handing in a live connection through ``config.attributes["connection"]``.
"""

from __future__ import annotations

from alembic import context

from visitmail.adapters.db.tables import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations with `visitmail migrate`")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
