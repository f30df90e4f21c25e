"""rate budget: recipients per day

``limits.recipients_per_day`` (Microsoft 365: 10,000 recipients per mailbox per day) is
shared by every worker like the per-day message budget, so the organization's rate bucket
counts the recipients sent in the current day window beside the messages
(``rate_buckets.day_recipients``, in the window that starts at ``day_start``). The limits
themselves live in the SMTP settings' JSON document: no column for them.

Revision ID: 0015_recipient_limits
Revises: 0014_dkim_keys
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_recipient_limits"
down_revision = "0014_dkim_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rate_buckets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("day_recipients", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("rate_buckets", schema=None) as batch_op:
        batch_op.drop_column("day_recipients")
