"""notification mapping revisions

Revision ID: 0005_mapping
Revises: 0004_events_reports
"""

from __future__ import annotations

revision = "0005_mapping"
down_revision = "0004_events_reports"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
