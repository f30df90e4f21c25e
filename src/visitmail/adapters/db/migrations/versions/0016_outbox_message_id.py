"""outbox Message-ID look-up: which mail of the dev inbox an organization sent

The dev inbox shows an organization the received mail whose Message-ID is on one of its
outbox messages (``OutboxRepository.owned_message_ids``). With only
``ix_outbox_org_created`` that look-up read every message of the organization;
``(organization_id, message_id)`` answers it from the index, whatever the history.

Revision ID: 0016_outbox_message_id
Revises: 0015_recipient_limits
"""

from __future__ import annotations

from alembic import op

revision = "0016_outbox_message_id"
down_revision = "0015_recipient_limits"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_outbox_org_message_id",
        "outbox_messages",
        ["organization_id", "message_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_org_message_id", table_name="outbox_messages")
