"""oauth credentials: OAuth2 settings and sealed tokens for SMTP XOAUTH2 (issue 11)

One row per organization that sends with ``auth_method = oauth2``: the non-secret OAuth
settings as JSON and each secret (client secret, private key, service-account key,
refresh token, cached access token) as a secret-box token. The token service locks the
row (``SELECT ... FOR UPDATE``) while it refreshes, so one refresh runs at a time.

Revision ID: 0013_oauth_credentials
Revises: 0012_outbox_status_counts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_oauth_credentials"
down_revision = "0012_outbox_status_counts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "smtp_oauth_credentials",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("client_secret_enc", sa.Text(), nullable=True),
        sa.Column("private_key_enc", sa.Text(), nullable=True),
        sa.Column("service_account_key_enc", sa.Text(), nullable=True),
        sa.Column("refresh_token_enc", sa.Text(), nullable=True),
        sa.Column("access_token_enc", sa.Text(), nullable=True),
        sa.Column("access_token_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("granted_scopes", sa.Text(), nullable=True),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_smtp_oauth_credentials_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("pk_smtp_oauth_credentials")),
    )


def downgrade() -> None:
    op.drop_table("smtp_oauth_credentials")
