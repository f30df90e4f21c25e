"""Bodies of the outbox API. Responses only: what an operator needs to follow a message's
fate, per recipient, with the server's own replies. The MIME bytes are never exposed."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field

from visitmail.domain.outbox import MessageKind, MessageStatus, RecipientStatus
from visitmail.domain.reply_advice import ReplyAdvice, ReplyTopic
from visitmail.services.outbox_ports import AttemptView, MessageView, RecipientView


class AdviceOut(BaseModel):
    """What a server's reply means and what to change, from the same explainer as the
    connection test. Temporary or permanent is the recipient's status / the attempt's
    outcome, decided by the reply code alone."""

    topic: ReplyTopic = Field(description="what the reply is about, e.g. sender_not_allowed")
    provider: str | None = Field(description="the provider the explanation is specific to")
    summary: str = Field(description="what the reply means")
    fix: str = Field(description="what to change")

    @classmethod
    def of(cls, advice: ReplyAdvice | None) -> AdviceOut | None:
        if advice is None:
            return None
        return cls(
            topic=advice.topic, provider=advice.provider, summary=advice.summary, fix=advice.fix
        )


class RecipientOut(BaseModel):
    address: str
    role: str = Field(description="to, cc or bcc")
    status: RecipientStatus
    code: int | None = Field(description="the server's last reply code for this recipient")
    enhanced_status: str | None = Field(description="the enhanced status code, e.g. 5.1.1")
    text: str | None = Field(description="the server's reply text")
    advice: AdviceOut | None = Field(
        default=None, description="what the reply means and its fix, when it is known"
    )
    updated_at: datetime

    @classmethod
    def of(cls, r: RecipientView) -> RecipientOut:
        return cls(
            address=r.address,
            role=r.role,
            status=r.status,
            code=r.code,
            enhanced_status=r.enhanced,
            text=r.text,
            advice=AdviceOut.of(r.advice),
            updated_at=r.updated_at,
        )


class AttemptOut(BaseModel):
    at: datetime
    recipient: str | None = Field(description="null for a failure of the whole connection")
    outcome: str = Field(description="accepted, deferred, rejected, unknown or server_failure")
    code: int | None
    enhanced_status: str | None
    text: str | None
    advice: AdviceOut | None = Field(
        default=None, description="what the reply means and its fix, when it is known"
    )
    duration_ms: int

    @classmethod
    def of(cls, a: AttemptView) -> AttemptOut:
        return cls(
            at=a.at,
            recipient=a.recipient,
            outcome=a.outcome,
            code=a.code,
            enhanced_status=a.enhanced,
            text=a.text,
            advice=AdviceOut.of(a.advice),
            duration_ms=a.duration_ms,
        )


class _MessageFields(BaseModel):
    id: UUID
    kind: MessageKind
    status: MessageStatus
    message_id_header: str = Field(
        description="the RFC 5322 Message-ID header (a webhook's X-Visitmail-Id), the same on "
        "every retry; `id` is the outbox message's own id, called `message_id` elsewhere"
    )
    idempotency_key: str = Field(description="the key it was enqueued with, for correlation")
    mail_from: str = Field(description="the envelope sender")
    subject: str
    size: int = Field(description="size of the rendered message in bytes")
    priority: int
    attempt_count: int = Field(
        description="delivery attempts so far (one per SMTP conversation with the server)"
    )
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    not_before: datetime = Field(description="not sent before this time (backoff)")
    expires_at: datetime | None
    possible_duplicate: bool = Field(
        description="an attempt's outcome was unknown; the receiver may hold it twice"
    )
    last_error: str | None
    recipients: list[RecipientOut]


def _fields(m: MessageView) -> dict[str, object]:
    return {
        "id": m.id,
        "kind": m.kind,
        "status": m.status,
        "message_id_header": m.message_id,
        "idempotency_key": m.idempotency_key,
        "mail_from": m.mail_from,
        "subject": m.subject,
        "size": m.size,
        "priority": m.priority,
        "attempt_count": m.attempts,
        "created_at": m.created_at,
        "updated_at": m.updated_at,
        "sent_at": m.sent_at,
        "not_before": m.not_before,
        "expires_at": m.expires_at,
        "possible_duplicate": m.possible_duplicate,
        "last_error": m.last_error,
        "recipients": [RecipientOut.of(r) for r in m.recipients],
    }


class MessageOut(_MessageFields):
    """One message in a list: ``attempts`` is the number of attempts so far."""

    attempts: int = Field(description="number of delivery attempts so far (= attempt_count)")

    @classmethod
    def of(cls, m: MessageView) -> MessageOut:
        return cls.model_validate({**_fields(m), "attempts": m.attempts})


class MessageDetailOut(_MessageFields):
    """One message with its attempt ledger: ``attempts`` lists every attempt's result, one
    entry per recipient per conversation (one per conversation if the server failed before
    any recipient was answered); their conversations are counted by ``attempt_count``."""

    attempts: list[AttemptOut] = Field(description="the attempt ledger, oldest first")

    @classmethod
    def of(cls, m: MessageView) -> MessageDetailOut:
        return cls.model_validate(
            {**_fields(m), "attempts": [AttemptOut.of(a) for a in m.attempt_log]}
        )


class MessageCounts(BaseModel):
    """Messages of the organization per status (all of them, not just this page)."""

    queued: int
    sending: int
    sent: int
    deferred: int
    failed: int
    cancelled: int
    expired: int

    @classmethod
    def of(cls, counts: dict[MessageStatus, int]) -> MessageCounts:
        return cls.model_validate({s.value: counts.get(s, 0) for s in MessageStatus})


class MessageList(BaseModel):
    items: list[MessageOut]
    counts: MessageCounts
