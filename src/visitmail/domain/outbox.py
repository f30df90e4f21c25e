"""The outbox's vocabulary and the pure rules of a message's life (DESIGN.md, "A message's
life"): statuses, what one delivery attempt produced, and how that settles the message.

``queued`` → ``sending`` (leased) → ``sent`` | ``queued`` again with ``not_before``
(deferred) | ``failed`` | ``cancelled`` | ``expired``. Each recipient has its own status.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from visitmail.domain.retry_policy import RetryPolicy
from visitmail.domain.smtp_replies import ReplyClass, SmtpReply, classify


class MessageStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DEFERRED = "deferred"  # queued, waiting for not_before after a temporary failure
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def final(self) -> bool:
        return self in _FINAL

    @property
    def retryable(self) -> bool:
        """An operator may send it again now (the outbox repository's rule)."""
        return self in RETRYABLE

    @property
    def cancellable(self) -> bool:
        """An operator may stop it: it waits, no worker holds it."""
        return self in CANCELLABLE


_FINAL = {MessageStatus.SENT, MessageStatus.FAILED, MessageStatus.CANCELLED, MessageStatus.EXPIRED}
# What an operator's retry and cancel accept (adapters/db/outbox_repo.py applies them in SQL).
RETRYABLE = frozenset(
    {
        MessageStatus.FAILED,
        MessageStatus.EXPIRED,
        MessageStatus.DEFERRED,
        MessageStatus.CANCELLED,
        MessageStatus.QUEUED,
    }
)
CANCELLABLE = frozenset({MessageStatus.QUEUED, MessageStatus.DEFERRED})


class RecipientStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DEFERRED = "deferred"
    REJECTED = "rejected"
    SUPPRESSED = "suppressed"
    # After ``accepted``: a bounce or a complaint came back later (``domain.delivery_events``).
    BOUNCED = "bounced"
    COMPLAINED = "complained"

    @property
    def open(self) -> bool:
        """Still to be delivered."""
        return self in (RecipientStatus.PENDING, RecipientStatus.DEFERRED)


class MessageKind(StrEnum):
    NOTIFICATION = "notification"
    FOLLOW_UP = "follow_up"
    TEST = "test"
    WEBHOOK = "webhook"


class FailureStage(StrEnum):
    """Where a conversation broke before any recipient got an answer."""

    CONNECT = "connect"
    TLS = "tls"
    AUTH = "auth"
    PROTOCOL = "protocol"


@dataclass(frozen=True, slots=True)
class RecipientResult:
    address: str
    reply: SmtpReply


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """What one conversation produced for one message.

    Exactly one shape applies:
    - ``server_failure`` set: connect/TLS/auth broke; no recipient was answered.
    - otherwise ``results`` holds the final reply of each recipient that got one (RCPT's
      refusal, or DATA's answer for those RCPT accepted), and ``unknown_recipients`` those
      accepted at RCPT whose DATA reply never came: the connection was lost after the final
      dot, so they may or may not have the message.
    """

    results: list[RecipientResult] = field(default_factory=list)
    server_failure: FailureStage | None = None
    failure_text: str = ""
    failure_reply: SmtpReply | None = None  # the server's reply that ended it, if any
    pause_queue: bool = False  # a server failure only a person can repair: pause at once
    unknown_recipients: list[str] = field(default_factory=list)
    duration_ms: int = 0

    @property
    def unknown(self) -> bool:
        return bool(self.unknown_recipients)


@dataclass(frozen=True, slots=True)
class RecipientChange:
    address: str
    status: RecipientStatus
    code: int | None
    enhanced: str | None
    text: str


@dataclass(frozen=True, slots=True)
class Settlement:
    """The new state of the message and its recipients after one attempt."""

    status: MessageStatus
    not_before: datetime | None
    recipients: list[RecipientChange]
    possible_duplicate: bool
    throttled: bool
    server_failure: bool
    last_error: str | None


def settle(
    outcome: AttemptOutcome,
    *,
    open_recipients: list[str],
    attempt: int,
    created_at: datetime,
    expires_at: datetime | None,
    already_possible_duplicate: bool,
    now: datetime,
    policy: RetryPolicy,
    accepted_before: int = 0,
    rng: random.Random | None = None,
) -> Settlement:
    """Apply one attempt's outcome. ``open_recipients`` are those this attempt tried;
    ``accepted_before`` counts recipients accepted by earlier attempts."""
    deadline_policy = policy
    if expires_at is not None:
        deadline_policy = RetryPolicy(
            base=policy.base,
            factor=policy.factor,
            cap=policy.cap,
            jitter=policy.jitter,
            max_age=min(policy.max_age, expires_at - created_at),
        )
    retry_at = deadline_policy.next_try(attempt=attempt, created_at=created_at, now=now, rng=rng)

    if outcome.server_failure is not None:
        return Settlement(
            status=MessageStatus.DEFERRED if retry_at else MessageStatus.EXPIRED,
            not_before=retry_at,
            recipients=[],
            possible_duplicate=already_possible_duplicate,
            throttled=False,
            server_failure=True,
            last_error=f"{outcome.server_failure.value}: {outcome.failure_text}",
        )

    changes: list[RecipientChange] = []
    throttled = False
    for result in outcome.results:
        kind = classify(result.reply)
        throttled = throttled or kind is ReplyClass.THROTTLED
        recipient_status = {
            ReplyClass.ACCEPTED: RecipientStatus.ACCEPTED,
            ReplyClass.PERMANENT: RecipientStatus.REJECTED,
        }.get(kind, RecipientStatus.DEFERRED)
        changes.append(
            RecipientChange(
                result.address,
                recipient_status,
                result.reply.code,
                result.reply.enhanced_status,
                result.reply.text,
            )
        )

    if outcome.unknown:
        if already_possible_duplicate:
            # Retried once already with the same Message-ID; a second blind resend could
            # spam the lead. Stop and let an operator decide.
            return Settlement(
                status=MessageStatus.FAILED,
                not_before=None,
                recipients=changes,
                possible_duplicate=True,
                throttled=throttled,
                server_failure=False,
                last_error="the outcome was unknown twice (connection lost after the data); "
                "the message may have been delivered",
            )
        return Settlement(
            status=MessageStatus.DEFERRED,
            not_before=now,  # at once: the same Message-ID lets the receiver deduplicate
            recipients=changes,
            possible_duplicate=True,
            throttled=throttled,
            server_failure=False,
            last_error="connection lost after the final dot: outcome unknown, retrying once",
        )

    answered = {r.address for r in outcome.results}
    for address in open_recipients:
        if address not in answered:  # not reached (e.g. the server closed mid-RCPT)
            changes.append(RecipientChange(address, RecipientStatus.DEFERRED, None, None, ""))

    accepted = accepted_before + sum(c.status is RecipientStatus.ACCEPTED for c in changes)
    still_open = [c for c in changes if c.status is RecipientStatus.DEFERRED]
    if still_open:
        status = MessageStatus.DEFERRED if retry_at else MessageStatus.EXPIRED
        not_before = retry_at
    else:
        status = MessageStatus.SENT if accepted else MessageStatus.FAILED
        not_before = None
    last = next((c for c in changes if c.status is not RecipientStatus.ACCEPTED), None)
    return Settlement(
        status=status,
        not_before=not_before,
        recipients=changes,
        possible_duplicate=already_possible_duplicate,
        throttled=throttled,
        server_failure=False,
        last_error=f"{last.code} {last.text}".strip() if last else None,
    )
