"""outbox status counts: counted from an index, not from the messages

The outbox page, ``GET /api/v1/messages`` and the dashboard count an organization's
messages per status. With only ``ix_outbox_org_created`` the count read every message row
(each with its MIME bytes): 170-600 ms on SQLite with 100,000 finished messages, on every
page view. ``(organization_id, status)`` answers it from the index alone (about 10 ms).

Revision ID: 0012_outbox_status_counts
Revises: 0011_suppression_list
"""

from __future__ import annotations

from alembic import op

revision = "0012_outbox_status_counts"
down_revision = "0011_suppression_list"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_outbox_org_status", "outbox_messages", ["organization_id", "status"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_org_status", table_name="outbox_messages")
