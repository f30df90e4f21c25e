"""delivery events and the bounce mailbox: bounces and complaints after a 250 (issue 13)

One row per recipient a DSN, ARF report or relay webhook names, once per source event
(``uq_delivery_events_source``); the evidence behind a ``bounced`` / ``complained``
recipient and suppression. Recipient states and suppression reasons are strings: the new
values ``bounced`` and ``complained`` need no schema change. ``bounce_mailboxes``: the IMAP
mailbox each organization's bounces are read from, with its cursor and poll lease.

Revision ID: 0019_delivery_events
Revises: 0018_event_dates
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019_delivery_events"
down_revision = "0018_event_dates"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "delivery_events",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "organization_id",
            sa.Uuid(),
            sa.ForeignKey("organizations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("source_ref", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(8), nullable=True),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("outbox_id", sa.Uuid(), nullable=False),
        sa.Column("message_kind", sa.String(20), nullable=False),
        sa.Column("report_id", sa.Uuid(), nullable=True),
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=True),
        sa.Column("diagnostic", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint(
            "organization_id", "source", "source_ref", "address", name="uq_delivery_events_source"
        ),
    )
    op.create_index(
        "ix_delivery_events_org_address",
        "delivery_events",
        ["organization_id", "address", "occurred_at"],
    )
    op.create_index(
        "ix_delivery_events_org_report", "delivery_events", ["organization_id", "report_id"]
    )
    op.create_index(
        "ix_delivery_events_org_outbox", "delivery_events", ["organization_id", "outbox_id"]
    )
    op.create_index(
        "ix_delivery_events_org_received",
        "delivery_events",
        ["organization_id", "received_at", "kind", "severity"],
    )

    op.create_table(
        "bounce_mailboxes",
        sa.Column(
            "organization_id",
            sa.Uuid(),
            sa.ForeignKey("organizations.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("host", sa.String(253), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("security", sa.String(16), nullable=False),
        sa.Column("username", sa.String(320), nullable=True),
        sa.Column("password_enc", sa.Text(), nullable=True),
        sa.Column("folder", sa.String(200), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=True),
        sa.Column("last_uid", sa.BigInteger(), nullable=True),
        sa.Column("last_polled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("reports_found", sa.Integer(), nullable=False),
        sa.Column("poll_lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("bounce_mailboxes")
    op.drop_table("delivery_events")
