"""notification mapping revisions

Revision ID: 0005_mapping
Revises: 0004_events_reports
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_mapping"
down_revision = "0004_events_reports"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mapping_revisions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_mapping_revisions_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mapping_revisions")),
        sa.UniqueConstraint("organization_id", "number", name="uq_mapping_revisions_org_number"),
    )
    with op.batch_alter_table("mapping_revisions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_mapping_revisions_org_active", ["organization_id", "active"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("mapping_revisions", schema=None) as batch_op:
        batch_op.drop_index("ix_mapping_revisions_org_active")
    op.drop_table("mapping_revisions")
