"""The event page's bulk follow-up as the user reads it: the confirmation's rows and
counts before sending, and after the redirect the result — each lead by name and company
with its outcome in plain words and tone (:mod:`~visitmail.web.ui.follow_up_words`), the
counts at the top, and the queued messages for the progress bar.

The result crosses the redirect as a sealed token (:mod:`~visitmail.web.ui.action_result`)
holding the report ids and statuses only (and the message of a failure); the names, the
messages queued and the dates of earlier sends are read again when the page is shown
(:func:`~visitmail.services.follow_up_review.describe_results`).
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from visitmail.domain.follow_up import FollowUpStatus
from visitmail.domain.reports import Report
from visitmail.runtime import Runtime
from visitmail.services import follow_up_review, follow_ups
from visitmail.services.follow_up_review import BulkReview, LeadOutcome
from visitmail.web.ui.action_result import open_result, seal_result
from visitmail.web.ui.follow_up_words import Words, outcome_words, review_words
from visitmail.web.ui.session import UiSession

MAX_MESSAGE = 300  # a failure's message in the token: enough to read, bounded


@dataclass(frozen=True, slots=True)
class BulkRow:
    report_id: UUID
    name: str  # "Anna Müller", or "Unknown report" when the report cannot be seen
    company: str
    status: str
    words: Words
    outbox_id: UUID | None


@dataclass(frozen=True, slots=True)
class BulkView:
    rows: list[BulkRow]

    def count(self, tone: str) -> int:
        return sum(1 for r in self.rows if r.words.tone == tone)

    @property
    def tone(self) -> str:
        """The summary's tone: red if anything failed, amber if anything was skipped."""
        if self.count("error"):
            return "error"
        return "warn" if self.count("warn") else "ok"

    @property
    def queued_ids(self) -> str:
        return ",".join(
            str(r.outbox_id)
            for r in self.rows
            if r.status == FollowUpStatus.QUEUED.value and r.outbox_id
        )


def lead_name(report: Report | None) -> str:
    if report is None:
        return "Unknown report"
    name = f"{report.lead.first_name} {report.lead.last_name}".strip()
    return name or report.lead.email or "Unnamed lead"


def _row(outcome: LeadOutcome, words: Words) -> BulkRow:
    company = outcome.report.lead.company if outcome.report else ""
    return BulkRow(
        outcome.report_id,
        lead_name(outcome.report),
        company or "",
        outcome.status.value,
        words,
        outcome.outbox_id,
    )


def review_view(review: BulkReview) -> BulkView:
    """The confirmation: what will happen to each chosen lead."""
    return BulkView(
        [
            _row(o, review_words(o.status.value, sent_at=o.sent_at, message=o.message))
            for o in review.rows
        ]
    )


def _kind(event_id: UUID) -> str:
    return f"bulk:{event_id}"


def seal_bulk(
    runtime: Runtime, session: UiSession, event_id: UUID, result: follow_ups.BulkResult
) -> str:
    """The token for the redirect after a bulk send of ``event_id``'s reports."""
    return seal_result(
        runtime.keyring,
        session,
        _kind(event_id),
        {
            "r": [[r.report_id.hex, r.status.value] for r in result.results],
            "m": {
                r.report_id.hex: (r.message or "")[:MAX_MESSAGE]
                for r in result.results
                if r.status is FollowUpStatus.ERROR
            },
        },
    )


def _entries(payload: dict[str, object]) -> list[tuple[UUID, FollowUpStatus, str | None]]:
    """The token's outcomes; a malformed entry is left out (the token was sealed by us, so
    that would be a bug, not an attack)."""
    messages = payload.get("m")
    messages = messages if isinstance(messages, dict) else {}
    entries: list[tuple[UUID, FollowUpStatus, str | None]] = []
    raw = payload.get("r")
    for item in raw if isinstance(raw, list) else []:
        try:
            report_hex, status = item
            report_id = UUID(hex=str(report_hex))
            entries.append((report_id, FollowUpStatus(status), messages.get(report_id.hex) or None))
        except (TypeError, ValueError):
            continue
    return entries


async def open_bulk(
    runtime: Runtime, session: UiSession, event_id: UUID, token: str
) -> BulkView | None:
    """The result the redirect carried, read again from the database; ``None`` when the
    token does not open (stale, another user's, another event's)."""
    payload = open_result(runtime.keyring, session, _kind(event_id), token)
    if payload is None:
        return None
    async with runtime.uow(read_only=True) as uow:
        outcomes = await follow_up_review.describe_results(
            uow, session.principal, _entries(payload)
        )
    return BulkView(
        [
            _row(o, outcome_words(o.status.value, sent_at=o.sent_at, message=o.message))
            for o in outcomes
        ]
    )
