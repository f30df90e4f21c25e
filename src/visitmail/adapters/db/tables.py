"""The schema. Every tenant table carries ``organization_id``; migrations live beside it."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.expression import true

from visitmail.adapters.db.types import UTCDateTime
from visitmail.domain.ids import new_id

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class OrganizationRow(Base):
    __tablename__ = "organizations"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    require_follow_up_consent: Mapped[bool] = mapped_column(
        Boolean, default=True, server_default=true()
    )


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(255))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: ``set`` | ``one_time`` | ``one_time_used`` (domain.identity.PasswordState; 0017)
    password_state: Mapped[str] = mapped_column(String(16), default="set", server_default="set")


class ApiTokenRow(Base):
    __tablename__ = "api_tokens"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WebSessionRow(Base):
    __tablename__ = "web_sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class LoginFailureRow(Base):
    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(400))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class AuditRow(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_org_at", "organization_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    actor_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    action: Mapped[str] = mapped_column(String(100))
    target: Mapped[str] = mapped_column(String(320))  # an address fits (0011)
    fields: Mapped[list[str]] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class SmtpSettingsRow(Base):
    """One row per organization: the non-secret settings as a JSON document, and each secret
    as a secret-box token (``v1:<key id>:<base64>``), never as plain text."""

    __tablename__ = "smtp_settings"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    document: Mapped[dict[str, object]] = mapped_column(JSON)
    password_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    proxy_password_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    client_key_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)


class SmtpOAuthRow(Base):
    """OAuth2 for sending (issue 11): one row per organization that uses ``oauth2``. The
    non-secret OAuth settings as a JSON document; every secret (client secret, private key,
    service-account key, refresh token, the cached access token) as a secret-box token bound
    to organization and field. The token service locks this row while it refreshes."""

    __tablename__ = "smtp_oauth_credentials"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    document: Mapped[dict[str, object]] = mapped_column(JSON)
    client_secret_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    private_key_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    service_account_key_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    refresh_token_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    access_token_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    access_token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    granted_scopes: Mapped[str | None] = mapped_column(Text, nullable=True)
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


# --- DKIM signing (issue 11) ----------------------------------------------------------------


class DkimKeyRow(Base):
    """One DKIM key of an organization: its selector, signing domain, algorithm, public key
    (base64, as published), and the private half as a secret-box token sealed for the field
    ``dkim.private_key:<id>``; never stored in plain text."""

    __tablename__ = "dkim_keys"
    __table_args__ = (
        UniqueConstraint(
            "organization_id", "selector", "domain", name="uq_dkim_keys_org_selector_domain"
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    selector: Mapped[str] = mapped_column(String(63))
    domain: Mapped[str] = mapped_column(String(253))
    algorithm: Mapped[str] = mapped_column(String(16))
    public_key: Mapped[str] = mapped_column(Text)
    private_key_enc: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)


class DkimSigningRow(Base):
    """Per organization: whether mail is signed, and with which key."""

    __tablename__ = "dkim_signing"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    active_key_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("dkim_keys.id", ondelete="SET NULL"), nullable=True
    )
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


# --- the outbox (issue 4) -----------------------------------------------------------------


class OutboxMessageRow(Base):
    """One email (or webhook) to deliver. The MIME bytes are rendered once, at enqueue."""

    __tablename__ = "outbox_messages"
    __table_args__ = (
        UniqueConstraint("organization_id", "idempotency_key", name="uq_outbox_idempotency"),
        # The claim query: due messages by status and time.
        Index("ix_outbox_due", "status", "not_before"),
        Index("ix_outbox_org_created", "organization_id", "created_at"),
        # Counts per status come from this index alone (migration 0012).
        Index("ix_outbox_org_status", "organization_id", "status"),
        # The dev inbox: which received Message-IDs an organization sent (migration 0016).
        Index("ix_outbox_org_message_id", "organization_id", "message_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(20))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    message_id: Mapped[str] = mapped_column(String(255))
    mail_from: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(500))
    mime: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))
    not_before: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(80), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    possible_duplicate: Mapped[bool] = mapped_column(Boolean, default=False)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    meta: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)


class OutboxRecipientRow(Base):
    __tablename__ = "outbox_recipients"
    __table_args__ = (Index("ix_outbox_recipients_message", "message_pk"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    message_pk: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("outbox_messages.id", ondelete="CASCADE")
    )
    organization_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    address: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(8))  # to | cc | bcc
    status: Mapped[str] = mapped_column(String(16))
    last_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_enhanced: Mapped[str | None] = mapped_column(String(16), nullable=True)
    last_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


# The follow-up hook "an earlier follow-up to this address was refused" (5xx): rejected
# recipients by lower-cased address. Partial, so queued and accepted recipients cost
# nothing; a query uses it only when it states ``status = 'rejected'`` literally.
Index(
    "ix_outbox_recipients_rejected",
    OutboxRecipientRow.organization_id,
    func.lower(OutboxRecipientRow.address),
    sqlite_where=text("status = 'rejected'"),
    postgresql_where=text("status = 'rejected'"),
)


# The claim (outbox_repo.claim), in two index-served parts so its cost does not grow
# with the backlog: waiting messages in claim order, and leases that may have expired.
Index(
    "ix_outbox_waiting",
    OutboxMessageRow.priority.desc(),
    OutboxMessageRow.not_before,
    sqlite_where=text("status IN ('queued', 'deferred')"),
    postgresql_where=text("status IN ('queued', 'deferred')"),
)
Index(
    "ix_outbox_leased",
    OutboxMessageRow.lease_expires_at,
    sqlite_where=text("status = 'sending'"),
    postgresql_where=text("status = 'sending'"),
)


class DeliveryAttemptRow(Base):
    """The ledger: every attempt, per recipient where the server answered per recipient."""

    __tablename__ = "delivery_attempts"
    __table_args__ = (Index("ix_delivery_attempts_message", "message_pk", "at"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    message_pk: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("outbox_messages.id", ondelete="CASCADE")
    )
    organization_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    recipient: Mapped[str | None] = mapped_column(String(320), nullable=True)
    outcome: Mapped[str] = mapped_column(String(20))
    code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    enhanced: Mapped[str | None] = mapped_column(String(16), nullable=True)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(80))


class SmtpHealthRow(Base):
    """Per organization: consecutive server failures, and the pause they cause."""

    __tablename__ = "smtp_health"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    paused_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    next_probe_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_failure: Mapped[str | None] = mapped_column(Text, nullable=True)


class RateBucketRow(Base):
    """The per-server send budget shared by every worker on every machine."""

    __tablename__ = "rate_buckets"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    tokens: Mapped[float] = mapped_column(Float)
    refilled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    slowdown: Mapped[float] = mapped_column(Float, default=1.0)  # 1 = full rate, 0.5 = half
    slowdown_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    hour_start: Mapped[datetime] = mapped_column(UTCDateTime)
    hour_count: Mapped[int] = mapped_column(Integer, default=0)
    day_start: Mapped[datetime] = mapped_column(UTCDateTime)
    day_count: Mapped[int] = mapped_column(Integer, default=0)
    # Recipients sent in the day window starting at day_start (limits.recipients_per_day).
    day_recipients: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


# --- events, their media library, visit reports (issue 5) ---------------------------------


class EventRow(Base):
    """An event's questionnaire: languages and questions as JSON documents."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_org_status", "organization_id", "status"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(200))
    languages: Mapped[list[str]] = mapped_column(JSON)
    questions: Mapped[list[dict[str, object]]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    updated_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    # The event's days (0018): calendar dates without a time zone, both optional.
    starts_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    ends_on: Mapped[date | None] = mapped_column(Date, nullable=True)


class EventMediaRow(Base):
    """One file of an event's media library, stored in the database so every node sees it."""

    __tablename__ = "event_media"
    __table_args__ = (Index("ix_event_media_org_event", "organization_id", "event_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    title: Mapped[str | None] = mapped_column(String(200), nullable=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)


class ReportRow(Base):
    """A visit report: the lead's contact fields and the answers as JSON documents; the
    lead's email also as a column, for look-ups by address (follow-ups, suppression)."""

    __tablename__ = "reports"
    __table_args__ = (
        Index("ix_reports_org_event", "organization_id", "event_id", "captured_at"),
        Index("ix_reports_org_captured_by", "organization_id", "captured_by"),
        Index("ix_reports_org_lead_email", "organization_id", "lead_email"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    lead: Mapped[dict[str, str]] = mapped_column(JSON)
    lead_email: Mapped[str] = mapped_column(String(320))
    answers: Mapped[dict[str, object]] = mapped_column(JSON)
    notes: Mapped[str] = mapped_column(Text)
    consent_follow_up_email: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_marketing: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16))
    revision: Mapped[int] = mapped_column(Integer, default=1)
    captured_by: Mapped[uuid.UUID] = mapped_column(Uuid)
    captured_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    exported_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class MappingRevisionRow(Base):
    """One revision of an organization's notification mapping: the document as the admin
    sent it, numbered per organization; at most one revision per organization is active
    (kept so by the repository, under a lock on the organization's row)."""

    __tablename__ = "mapping_revisions"
    __table_args__ = (
        UniqueConstraint("organization_id", "number", name="uq_mapping_revisions_org_number"),
        Index("ix_mapping_revisions_org_active", "organization_id", "active"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    number: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict[str, object]] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


# --- webhook secrets (issue 5) ------------------------------------------------------------


class WebhookSecretRow(Base):
    """A named webhook signing secret of one organization, as a secret-box token sealed for
    the field ``webhook:<name>``; never stored in plain text."""

    __tablename__ = "webhook_secrets"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    secret_enc: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


# --- follow-up emails (issue 5) ------------------------------------------------------------


class FollowUpTemplateRow(Base):
    """One follow-up template per event and language; edited in place (its id stays)."""

    __tablename__ = "follow_up_templates"
    __table_args__ = (
        UniqueConstraint("event_id", "language", name="uq_follow_up_templates_event_language"),
        Index("ix_follow_up_templates_org_event", "organization_id", "event_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    language: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text, nullable=True)
    attachments: Mapped[list[str]] = mapped_column(JSON)  # media ids
    reply_to_reporter: Mapped[bool] = mapped_column(Boolean, default=True)
    bcc_reporter: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)


class SuppressionRow(Base):
    """An address of an organization that follow-ups are never queued to, and why: who
    added it by hand (``created_by``, ``note``), or for ``rejected`` the server's reply
    that caused it and the follow-up that drew it (migration 0011)."""

    __tablename__ = "suppressions"
    __table_args__ = (Index("ix_suppressions_org_created", "organization_id", "created_at"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    address: Mapped[str] = mapped_column(String(320), primary_key=True)  # lower-cased
    reason: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    reply_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reply_enhanced: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reply_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    # No foreign key: the outbox purges finished messages, the evidence stays.
    source_outbox_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    source_message_id: Mapped[str | None] = mapped_column(String(255), nullable=True)


class SuppressionLiftRow(Base):
    """The latest time an address was taken off the suppression list: refusals of it in
    the outbox from before then no longer suppress it (the rejection hook)."""

    __tablename__ = "suppression_lifts"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    address: Mapped[str] = mapped_column(String(320), primary_key=True)  # lower-cased
    lifted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lifted_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)


class FollowUpSendRow(Base):
    """Each follow-up queued (``sequence`` 1, 2, … per report and template) or suppressed
    (``sequence`` NULL). Kept apart from the outbox, which purges finished messages, so
    "never twice" outlives the retention period. ``outbox_id`` is deliberately no foreign
    key for the same reason."""

    __tablename__ = "follow_up_sends"
    __table_args__ = (
        UniqueConstraint(
            "report_id", "template_id", "sequence", name="uq_follow_up_sends_report_template"
        ),
        Index("ix_follow_up_sends_org_report", "organization_id", "report_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    report_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"))
    template_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("follow_up_templates.id", ondelete="CASCADE")
    )
    sequence: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    outbox_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    address: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)


# --- bounces and complaints (issue 13) --------------------------------------------------


class DeliveryEventRow(Base):
    """A bounce, complaint, delay or relay unsubscribe that came back for a recipient of a
    sent message (``domain.delivery_events``): the evidence behind a ``bounced`` /
    ``complained`` recipient and suppression. ``outbox_id`` and ``report_id`` are no
    foreign keys: the outbox purges finished messages, the evidence stays."""

    __tablename__ = "delivery_events"
    __table_args__ = (
        # Applied once: the same DSN read twice, a webhook delivered twice.
        UniqueConstraint(
            "organization_id", "source", "source_ref", "address", name="uq_delivery_events_source"
        ),
        # Soft bounces of an address in the window; the report's events.
        Index("ix_delivery_events_org_address", "organization_id", "address", "occurred_at"),
        Index("ix_delivery_events_org_report", "organization_id", "report_id"),
        Index("ix_delivery_events_org_outbox", "organization_id", "outbox_id"),
        # Covering: the 30-day counts per kind read the index alone.
        Index(
            "ix_delivery_events_org_received",
            "organization_id",
            "received_at",
            "kind",
            "severity",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    source: Mapped[str] = mapped_column(String(16))
    source_ref: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str | None] = mapped_column(String(8), nullable=True)
    address: Mapped[str] = mapped_column(String(320))  # lower-cased
    outbox_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    message_kind: Mapped[str] = mapped_column(String(20))  # notification | follow_up
    report_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    message_id: Mapped[str] = mapped_column(String(255))
    status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    diagnostic: Mapped[str] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BounceMailboxRow(Base):
    """Where an organization's bounces arrive (``domain.bounce_mailbox``), its own password
    sealed for ``bounce_mailbox.password`` (none: it signs in like the mail server), and
    how far it has been read (the IMAP cursor) and by whom (``poll_lease_until``: one
    worker polls a mailbox at a time)."""

    __tablename__ = "bounce_mailboxes"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    host: Mapped[str] = mapped_column(String(253))
    port: Mapped[int] = mapped_column(Integer)
    security: Mapped[str] = mapped_column(String(16))
    username: Mapped[str | None] = mapped_column(String(320), nullable=True)
    password_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    folder: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_uid: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    reports_found: Mapped[int] = mapped_column(Integer, default=0)
    poll_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RelayWebhookRow(Base):
    """One relay's webhook endpoint of an organization (``services.relay_webhooks``): the
    SHA-256 of the URL's token, never the token; the provider's verification data, the
    secret part (Mailgun signing key, basic-auth password) sealed for
    ``relay_webhook:<provider>``; what its events did so far."""

    __tablename__ = "relay_webhooks"
    __table_args__ = (
        UniqueConstraint("organization_id", "provider", name="uq_relay_webhooks_org_provider"),
        UniqueConstraint("token_hash", name="uq_relay_webhooks_token_hash"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    provider: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64))
    username: Mapped[str | None] = mapped_column(String(200), nullable=True)
    public_key: Mapped[str | None] = mapped_column(Text, nullable=True)
    topic_arn: Mapped[str | None] = mapped_column(String(400), nullable=True)
    secret_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_event_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    applied: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    unmatched: Mapped[int] = mapped_column(Integer, default=0)
