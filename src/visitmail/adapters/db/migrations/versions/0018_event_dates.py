"""events: optional dates (``starts_on``, ``ends_on``)

Calendar days without a time zone, both nullable: existing events have no dates.

Revision ID: 0018_event_dates
Revises: 0017_password_reset
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018_event_dates"
down_revision = "0017_password_reset"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("starts_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("ends_on", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("ends_on")
        batch_op.drop_column("starts_on")
