"""smtp settings: one row per organization, secrets as secret-box tokens

Revision ID: 0002_smtp_settings
Revises: 0001_identity
Create Date: 2026-11-25 17:01:33.517108
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_smtp_settings"
down_revision = "0001_identity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "smtp_settings",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("password_enc", sa.Text(), nullable=True),
        sa.Column("proxy_password_enc", sa.Text(), nullable=True),
        sa.Column("client_key_enc", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_smtp_settings_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("pk_smtp_settings")),
    )


def downgrade() -> None:
    op.drop_table("smtp_settings")
