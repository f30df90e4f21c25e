"""A follow-up's outcome in plain words, and the tone it is shown in.

One place for the words, so the event page's bulk result, its confirmation and the
report page say the same thing. Tones: ``ok`` (green: queued), ``warn`` (amber: skipped
by a rule — no consent, already sent, suppressed, no template — nothing is wrong, nothing
was sent) and ``error`` (red: it should have gone and did not).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from visitmail.domain.follow_up import FollowUpStatus

SKIP_REASONS = {
    FollowUpStatus.NO_CONSENT.value: "no consent to follow-up emails",
    FollowUpStatus.SUPPRESSED.value: "address on the suppression list",
    FollowUpStatus.NO_TEMPLATE.value: "no follow-up template in the lead's language "
    "or the event's default language",
}
NOT_CONFIGURED = "not_configured"


@dataclass(frozen=True, slots=True)
class Words:
    tone: str  # ok | warn | error
    text: str


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else ""


def outcome_words(
    status: str, *, sent_at: datetime | None = None, message: str | None = None
) -> Words:
    """What happened to one lead's follow-up, e.g. ``Skipped: no consent to follow-up
    emails``; ``already_sent`` names the first send's date when it is known."""
    if status == FollowUpStatus.QUEUED.value:
        return Words("ok", "Queued")
    if status == FollowUpStatus.ALREADY_SENT.value:
        return Words(
            "warn",
            f"Skipped: already sent on {when(sent_at)}" if sent_at else "Skipped: already sent",
        )
    if status in SKIP_REASONS:
        return Words("warn", f"Skipped: {SKIP_REASONS[status]}")
    if status == NOT_CONFIGURED:
        return Words("error", "Not sent: no outgoing mail server is set up yet")
    return Words("error", f"Failed: {message}" if message else "Failed")


def review_words(
    status: str, *, sent_at: datetime | None = None, message: str | None = None
) -> Words:
    """What will happen to one lead's follow-up if the bulk send is confirmed."""
    if status == FollowUpStatus.QUEUED.value:
        return Words("ok", "Will be mailed")
    done = outcome_words(status, sent_at=sent_at, message=message)
    if done.text.startswith("Skipped"):
        return Words(done.tone, "Will be skipped" + done.text.removeprefix("Skipped"))
    return Words(done.tone, "Cannot be sent" + done.text.removeprefix("Failed"))
