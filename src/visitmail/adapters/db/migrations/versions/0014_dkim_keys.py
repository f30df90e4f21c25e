"""DKIM keys: per organization, keys with their selector, domain and sealed private half,
and whether (and with which key) mail is signed

``dkim_keys`` holds every key an organization generated (a rotation adds one; the old one
stays until the admin switches and deletes it); the private half is a secret-box token,
like the SMTP password. ``dkim_signing`` holds the organization's switch and active key.

Revision ID: 0014_dkim_keys
Revises: 0013_oauth_credentials
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_dkim_keys"
down_revision = "0013_oauth_credentials"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dkim_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("selector", sa.String(length=63), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("algorithm", sa.String(length=16), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("private_key_enc", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_dkim_keys_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dkim_keys")),
        sa.UniqueConstraint(
            "organization_id", "selector", "domain", name="uq_dkim_keys_org_selector_domain"
        ),
    )
    op.create_index(
        op.f("ix_dkim_keys_organization_id"), "dkim_keys", ["organization_id"], unique=False
    )
    op.create_table(
        "dkim_signing",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("active_key_id", sa.Uuid(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_dkim_signing_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["active_key_id"],
            ["dkim_keys.id"],
            name=op.f("fk_dkim_signing_active_key_id_dkim_keys"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("pk_dkim_signing")),
    )


def downgrade() -> None:
    op.drop_table("dkim_signing")
    op.drop_index(op.f("ix_dkim_keys_organization_id"), table_name="dkim_keys")
    op.drop_table("dkim_keys")
