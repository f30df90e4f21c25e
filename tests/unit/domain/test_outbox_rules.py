"""Reply classification, backoff and how one attempt settles a message."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from visitmail.domain.outbox import (
    AttemptOutcome,
    FailureStage,
    MessageStatus,
    RecipientResult,
    RecipientStatus,
    Settlement,
    settle,
)
from visitmail.domain.retry_policy import RetryPolicy
from visitmail.domain.smtp_replies import ReplyClass, SmtpReply, classify

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
POLICY = RetryPolicy(
    base=timedelta(seconds=10), cap=timedelta(minutes=5), jitter=0, max_age=timedelta(hours=1)
)


@pytest.mark.parametrize(
    ("code", "text", "expected"),
    [
        (250, "2.1.5 OK", ReplyClass.ACCEPTED),
        (550, "5.1.1 User unknown", ReplyClass.PERMANENT),
        (553, "5.7.1 Sender address rejected: not owned by user", ReplyClass.PERMANENT),
        (450, "4.2.1 Mailbox busy", ReplyClass.TEMPORARY),
        (451, "4.3.0 Local error in processing", ReplyClass.TEMPORARY),
        (421, "4.7.0 Too many messages, slow down", ReplyClass.THROTTLED),
        (454, "4.7.0 Rate limit exceeded", ReplyClass.THROTTLED),
        (450, "4.2.0 Daily quota reached", ReplyClass.THROTTLED),
        (452, "4.5.3 Too many recipients", ReplyClass.THROTTLED),
        (499, "odd", ReplyClass.TEMPORARY),
    ],
)
def test_replies_are_classified_by_code_and_text(
    code: int, text: str, expected: ReplyClass
) -> None:
    assert classify(SmtpReply(code, text)) is expected


def test_enhanced_status_is_read_from_the_text() -> None:
    assert SmtpReply(550, "5.1.1 <x@y> User unknown").enhanced_status == "5.1.1"
    assert SmtpReply(550, "User unknown").enhanced_status is None


def test_backoff_grows_exponentially_up_to_the_cap_with_bounded_jitter() -> None:
    policy = RetryPolicy(base=timedelta(seconds=10), cap=timedelta(seconds=100), jitter=0)
    assert [policy.delay(n).total_seconds() for n in range(1, 6)] == [10, 20, 40, 80, 100]
    jittery = RetryPolicy(base=timedelta(seconds=100), jitter=0.2)
    rng = random.Random(7)
    delays = [jittery.delay(1, rng).total_seconds() for _ in range(200)]
    assert min(delays) >= 80
    assert max(delays) <= 120
    assert len(set(delays)) > 100  # actually spread


def test_no_retry_past_the_maximum_age() -> None:
    assert POLICY.next_try(attempt=1, created_at=T0, now=T0 + timedelta(minutes=10)) is not None
    assert POLICY.next_try(attempt=9, created_at=T0, now=T0 + timedelta(minutes=58)) is None


def _settle(outcome: AttemptOutcome, **kw: object) -> Settlement:
    args: dict[str, object] = {
        "open_recipients": ["a@x.org", "b@x.org", "c@x.org"],
        "attempt": 1,
        "created_at": T0,
        "expires_at": None,
        "already_possible_duplicate": False,
        "now": T0,
        "policy": POLICY,
    }
    args.update(kw)
    return settle(outcome, **args)  # type: ignore[arg-type]


def test_mixed_recipients_accepted_rejected_deferred() -> None:
    outcome = AttemptOutcome(
        results=[
            RecipientResult("a@x.org", SmtpReply(250, "2.0.0 queued")),
            RecipientResult("b@x.org", SmtpReply(550, "5.1.1 unknown user")),
            RecipientResult("c@x.org", SmtpReply(451, "4.3.0 try later")),
        ]
    )
    result = _settle(outcome)
    statuses = {c.address: c.status for c in result.recipients}
    assert statuses == {
        "a@x.org": RecipientStatus.ACCEPTED,
        "b@x.org": RecipientStatus.REJECTED,
        "c@x.org": RecipientStatus.DEFERRED,
    }
    assert result.status is MessageStatus.DEFERRED
    assert result.not_before == T0 + timedelta(seconds=10)
    rejected = next(c for c in result.recipients if c.address == "b@x.org")
    assert (rejected.code, rejected.enhanced, rejected.text) == (550, "5.1.1", "5.1.1 unknown user")


def test_all_rejected_fails_and_any_accepted_is_sent() -> None:
    rejected = AttemptOutcome(results=[RecipientResult("a@x.org", SmtpReply(550, "no"))])
    assert _settle(rejected, open_recipients=["a@x.org"]).status is MessageStatus.FAILED
    later = AttemptOutcome(results=[RecipientResult("c@x.org", SmtpReply(550, "no"))])
    done = _settle(later, open_recipients=["c@x.org"], accepted_before=1)
    assert done.status is MessageStatus.SENT


def test_temporary_until_max_age_then_expired() -> None:
    outcome = AttemptOutcome(results=[RecipientResult("a@x.org", SmtpReply(451, "later"))])
    late = _settle(outcome, open_recipients=["a@x.org"], attempt=8, now=T0 + timedelta(minutes=59))
    assert late.status is MessageStatus.EXPIRED
    assert late.not_before is None


def test_expires_at_shortens_the_maximum_age() -> None:
    outcome = AttemptOutcome(results=[RecipientResult("a@x.org", SmtpReply(451, "later"))])
    result = _settle(outcome, open_recipients=["a@x.org"], expires_at=T0 + timedelta(seconds=5))
    assert result.status is MessageStatus.EXPIRED


def test_server_failures_defer_and_count_against_health() -> None:
    outcome = AttemptOutcome(server_failure=FailureStage.AUTH, failure_text="535 bad credentials")
    result = _settle(outcome)
    assert result.status is MessageStatus.DEFERRED
    assert result.server_failure
    assert result.recipients == []
    assert "auth: 535" in result.last_error


def test_unknown_outcome_is_retried_once_and_flagged() -> None:
    lost = AttemptOutcome(
        results=[RecipientResult("c@x.org", SmtpReply(550, "5.1.1 no such user"))],
        unknown_recipients=["a@x.org", "b@x.org"],
    )
    first = _settle(lost)
    assert first.status is MessageStatus.DEFERRED
    assert first.not_before == T0  # at once
    assert first.possible_duplicate
    # the definite answer is kept; the unknown ones stay open for the one retry
    assert [(c.address, c.status) for c in first.recipients] == [
        ("c@x.org", RecipientStatus.REJECTED)
    ]
    second = _settle(lost, already_possible_duplicate=True, attempt=2)
    assert second.status is MessageStatus.FAILED
    assert "may have been delivered" in second.last_error


def test_throttling_is_reported() -> None:
    outcome = AttemptOutcome(
        results=[RecipientResult("a@x.org", SmtpReply(421, "4.7.0 rate limited"))]
    )
    result = _settle(outcome, open_recipients=["a@x.org"])
    assert result.throttled
    assert result.status is MessageStatus.DEFERRED
