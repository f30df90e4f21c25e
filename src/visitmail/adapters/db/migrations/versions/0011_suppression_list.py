"""suppression list: why each address is on it, who added it, and lifts

The suppression list becomes something people manage (``/api/v1/suppressions``, the
Suppressions page), so each entry says why it is there: who added it by hand and their
note, or, for ``rejected``, the server's reply that caused it (code, enhanced status,
text) and the follow-up that drew it (outbox id, RFC 5322 Message-ID). Entries are listed
newest first per organization (``ix_suppressions_org_created``).

Lifting an entry must make the address sendable again, but the refused outbox recipient
that put it there stays in the outbox. ``suppression_lifts`` keeps the latest lift per
address; the rejection hook counts only refusals after it (a primary-key look-up beside
the partial index ``ix_outbox_recipients_rejected``; no scan of the history).

``audit_log.target`` widens to 320 characters so an audit entry can name any address
(the longest valid one is 254; PostgreSQL enforced 200, SQLite never enforces lengths).

Revision ID: 0011_suppression_list
Revises: 0010_claim_indexes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_suppression_list"
down_revision = "0010_claim_indexes"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("created_by", sa.Uuid()),
    ("note", sa.Text()),
    ("reply_code", sa.Integer()),
    ("reply_enhanced", sa.String(length=16)),
    ("reply_text", sa.Text()),
    ("source_outbox_id", sa.Uuid()),
    ("source_message_id", sa.String(length=255)),
)


def upgrade() -> None:
    with op.batch_alter_table("suppressions", schema=None) as batch_op:
        for name, type_ in _COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=True))
        batch_op.create_index(
            "ix_suppressions_org_created", ["organization_id", "created_at"], unique=False
        )
    op.create_table(
        "suppression_lifts",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("lifted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lifted_by", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_suppression_lifts_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "address", name=op.f("pk_suppression_lifts")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "audit_log", "target", type_=sa.String(length=320), existing_type=sa.String(200)
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "audit_log",
            "target",
            type_=sa.String(length=200),
            existing_type=sa.String(320),
            postgresql_using="left(target, 200)",
        )
    op.drop_table("suppression_lifts")
    with op.batch_alter_table("suppressions", schema=None) as batch_op:
        batch_op.drop_index("ix_suppressions_org_created")
        for name, _ in reversed(_COLUMNS):
            batch_op.drop_column(name)
