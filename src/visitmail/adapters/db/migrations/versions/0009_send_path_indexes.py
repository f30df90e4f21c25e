"""send-path indexes: rejected follow-up recipients by address

The follow-up hook "an earlier follow-up to this address was permanently refused" looked
recipients up by ``lower(address)`` with no index, so each follow-up scanned every
recipient the organization ever had. A partial index over rejected recipients only
(``WHERE status = 'rejected'``; queries state the same term literally) serves it on
SQLite and PostgreSQL, and costs nothing when a recipient is queued or accepted. Every
other look-up of the send path already has its index (primary keys,
``uq_outbox_idempotency``, ``ix_follow_up_sends_org_report``,
``ix_follow_up_templates_org_event``).

Revision ID: 0009_send_path_indexes
Revises: 0008_organization_settings
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_send_path_indexes"
down_revision = "0008_organization_settings"
branch_labels = None
depends_on = None

_REJECTED = sa.text("status = 'rejected'")


def upgrade() -> None:
    op.create_index(
        "ix_outbox_recipients_rejected",
        "outbox_recipients",
        ["organization_id", sa.text("lower(address)")],
        unique=False,
        sqlite_where=_REJECTED,
        postgresql_where=_REJECTED,
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_recipients_rejected", table_name="outbox_recipients")
