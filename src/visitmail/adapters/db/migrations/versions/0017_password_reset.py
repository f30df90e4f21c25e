"""users: password state (admin reset, one-time password, forced change)

``users.password_state`` is one of ``set`` (the user chose it), ``one_time`` (an admin
reset it; the generated password opens one session) and ``one_time_used`` (that session
was opened: the user must change the password, and the one-time password logs in no
more). Existing users keep ``set``.

Revision ID: 0017_password_reset
Revises: 0016_outbox_message_id
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_password_reset"
down_revision = "0016_outbox_message_id"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("password_state", sa.String(16), nullable=False, server_default="set")
        )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("password_state")
