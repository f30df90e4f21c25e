"""follow-up templates and suppression list

Revision ID: 0007_follow_ups
Revises: 0006_webhooks
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_follow_ups"
down_revision = "0006_webhooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "follow_up_templates",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("attachments", sa.JSON(), nullable=False),
        sa.Column("reply_to_reporter", sa.Boolean(), nullable=False),
        sa.Column("bcc_reporter", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name=op.f("fk_follow_up_templates_event_id_events"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_follow_up_templates_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_follow_up_templates")),
        sa.UniqueConstraint(
            "event_id", "language", name=op.f("uq_follow_up_templates_event_language")
        ),
    )
    with op.batch_alter_table("follow_up_templates", schema=None) as batch_op:
        batch_op.create_index(
            "ix_follow_up_templates_org_event", ["organization_id", "event_id"], unique=False
        )

    op.create_table(
        "suppressions",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_suppressions_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "address", name=op.f("pk_suppressions")),
    )

    op.create_table(
        "follow_up_sends",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("report_id", sa.Uuid(), nullable=False),
        sa.Column("template_id", sa.Uuid(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("outbox_id", sa.Uuid(), nullable=True),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_follow_up_sends_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["reports.id"],
            name=op.f("fk_follow_up_sends_report_id_reports"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["follow_up_templates.id"],
            name=op.f("fk_follow_up_sends_template_id_follow_up_templates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_follow_up_sends")),
        sa.UniqueConstraint(
            "report_id",
            "template_id",
            "sequence",
            name=op.f("uq_follow_up_sends_report_template"),
        ),
    )
    with op.batch_alter_table("follow_up_sends", schema=None) as batch_op:
        batch_op.create_index(
            "ix_follow_up_sends_org_report", ["organization_id", "report_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("follow_up_sends", schema=None) as batch_op:
        batch_op.drop_index("ix_follow_up_sends_org_report")
    op.drop_table("follow_up_sends")
    op.drop_table("suppressions")
    with op.batch_alter_table("follow_up_templates", schema=None) as batch_op:
        batch_op.drop_index("ix_follow_up_templates_org_event")
    op.drop_table("follow_up_templates")
