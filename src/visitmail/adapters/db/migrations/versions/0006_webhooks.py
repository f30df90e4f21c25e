"""webhook secrets

Revision ID: 0006_webhooks
Revises: 0005_mapping
"""

from __future__ import annotations

revision = "0006_webhooks"
down_revision = "0005_mapping"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
