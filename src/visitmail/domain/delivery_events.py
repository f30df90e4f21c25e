"""What happened to a message after the server said ``250``, from whichever source told us:
a bounce or complaint read from the sending mailbox (:mod:`delivery_reports`) or a relay's
webhook. Every source is normalised into :class:`DeliveryEvent`; one service applies them.

What an event changes (``services.delivery_events``):

* ``bounced`` **hard** (the address is wrong) and ``complained``: the recipient's state
  becomes ``bounced`` / ``complained`` with the diagnostic, and the address goes on the
  organization's suppression list with the evidence (reason ``bounced`` / ``complained``).
* ``bounced`` **soft** (a full mailbox, a block, a message too big): the recipient's state
  becomes ``bounced``; the address is suppressed only after :data:`SOFT_BOUNCE_LIMIT` soft
  bounces within :data:`SOFT_BOUNCE_WINDOW`.
* ``unsubscribed`` (a relay's own unsubscribe link): suppressed, reason ``unsubscribed``.
* ``deferred``: recorded only (the remote side is still trying).

An event names its message by candidate Message-IDs; only one the organization's outbox
holds counts (a forged or foreign report changes nothing), and only a recipient that message
was sent to. ``source`` + ``source_ref`` (+ the address) identify the event, so the same
DSN read twice or a webhook delivered twice is applied once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from visitmail.domain.delivery_reports import (
    DeliveryReport,
    ReportKind,
    Severity,
    clean_text,
)

SOFT_BOUNCE_LIMIT = 3
SOFT_BOUNCE_WINDOW = timedelta(days=30)
MAX_SOURCE_REF = 200


class DeliveryEventKind(StrEnum):
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    DEFERRED = "deferred"
    UNSUBSCRIBED = "unsubscribed"


class EventSource(StrEnum):
    MAILBOX = "mailbox"  # a DSN / ARF read from the sending mailbox over IMAP
    SENDGRID = "sendgrid"
    MAILGUN = "mailgun"
    POSTMARK = "postmark"
    BREVO = "brevo"
    SES = "ses"


@dataclass(frozen=True, slots=True)
class DeliveryEvent:
    """One thing that happened to one recipient of one sent message."""

    source: EventSource
    source_ref: str  # the DSN's hash, the relay's event id: unique per source
    kind: DeliveryEventKind
    address: str  # lower-cased
    message_ids: tuple[str, ...]  # candidate RFC 5322 Message-IDs, best first
    occurred_at: datetime
    severity: Severity | None = None  # bounces only
    status: str | None = None  # enhanced status code, when known
    diagnostic: str = ""  # the remote side's words, one bounded line

    def __post_init__(self) -> None:
        object.__setattr__(self, "address", self.address.strip().lower())
        object.__setattr__(self, "source_ref", self.source_ref[:MAX_SOURCE_REF])
        object.__setattr__(self, "diagnostic", clean_text(self.diagnostic))

    @property
    def suppresses_now(self) -> bool:
        """True if this event alone puts the address on the suppression list."""
        if self.kind is DeliveryEventKind.BOUNCED:
            return self.severity is Severity.HARD
        return self.kind in (DeliveryEventKind.COMPLAINED, DeliveryEventKind.UNSUBSCRIBED)

    @property
    def recipient_state(self) -> str | None:
        """The recipient's state after this event (``bounced`` / ``complained``), or
        ``None`` when its state stays (a delay, an unsubscribe)."""
        if self.kind in (DeliveryEventKind.BOUNCED, DeliveryEventKind.COMPLAINED):
            return self.kind.value
        return None


def events_of_report(
    report: DeliveryReport, *, source_ref: str, received_at: datetime
) -> list[DeliveryEvent]:
    """The events a report read from the mailbox stands for: one per recipient it names."""
    events: list[DeliveryEvent] = []
    for outcome in report.recipients:
        # Per recipient: one DSN may report one address failed and another delayed.
        if report.kind is ReportKind.COMPLAINT:
            kind = DeliveryEventKind.COMPLAINED
        elif outcome.action == "failed":
            kind = DeliveryEventKind.BOUNCED
        else:
            kind = DeliveryEventKind.DEFERRED
        events.append(
            DeliveryEvent(
                source=EventSource.MAILBOX,
                source_ref=source_ref,
                kind=kind,
                address=outcome.address,
                message_ids=report.message_ids,
                occurred_at=received_at,
                severity=outcome.severity,
                status=outcome.status,
                diagnostic=outcome.diagnostic,
            )
        )
    return events
