"""organization settings: follow-up consent requirement

Revision ID: 0008_organization_settings
Revises: 0007_follow_ups
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_organization_settings"
down_revision = "0007_follow_ups"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "require_follow_up_consent",
                sa.Boolean(),
                nullable=False,
                server_default=sa.true(),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.drop_column("require_follow_up_consent")
