"""claim indexes: the claim costs the same whatever the backlog

The claim picked due messages with one condition over two states (waiting, or leased with
an expired lease) ordered by priority and time, which no index could serve: every claim
read and sorted every due message (about 1 s per claim with 95,000 queued on PostgreSQL).
It is now two statements, each on a partial index whose predicate it states literally:
waiting messages in claim order (``ix_outbox_waiting``) and leases by expiry
(``ix_outbox_leased``).

Revision ID: 0010_claim_indexes
Revises: 0009_send_path_indexes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_claim_indexes"
down_revision = "0009_send_path_indexes"
branch_labels = None
depends_on = None

_WAITING = sa.text("status IN ('queued', 'deferred')")
_LEASED = sa.text("status = 'sending'")


def upgrade() -> None:
    op.create_index(
        "ix_outbox_waiting",
        "outbox_messages",
        [sa.text("priority DESC"), "not_before"],
        unique=False,
        sqlite_where=_WAITING,
        postgresql_where=_WAITING,
    )
    op.create_index(
        "ix_outbox_leased",
        "outbox_messages",
        ["lease_expires_at"],
        unique=False,
        sqlite_where=_LEASED,
        postgresql_where=_LEASED,
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_leased", table_name="outbox_messages")
    op.drop_index("ix_outbox_waiting", table_name="outbox_messages")
