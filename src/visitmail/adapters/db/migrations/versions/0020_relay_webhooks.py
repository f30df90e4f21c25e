"""relay webhooks: one endpoint per organization and relay provider (issue 13)

The URL's token is stored as its SHA-256 only; the secret half of the provider's
verification data (Mailgun signing key, Postmark / Brevo basic-auth password) sealed.

Revision ID: 0020_relay_webhooks
Revises: 0019_delivery_events
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020_relay_webhooks"
down_revision = "0019_delivery_events"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "relay_webhooks",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "organization_id",
            sa.Uuid(),
            sa.ForeignKey("organizations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("username", sa.String(200), nullable=True),
        sa.Column("public_key", sa.Text(), nullable=True),
        sa.Column("topic_arn", sa.String(400), nullable=True),
        sa.Column("secret_enc", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("applied", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("unmatched", sa.Integer(), nullable=False),
        sa.UniqueConstraint("organization_id", "provider", name="uq_relay_webhooks_org_provider"),
        sa.UniqueConstraint("token_hash", name="uq_relay_webhooks_token_hash"),
    )


def downgrade() -> None:
    op.drop_table("relay_webhooks")
