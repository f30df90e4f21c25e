"""Bounces and complaints read from real-world formats: Postfix's DSN, Microsoft 365's and
Google's non-delivery reports, the ARF example of RFC 5965, qmail's and Exim's plain
bounces; and mail that is not a report stays ``None``."""

from __future__ import annotations

from pathlib import Path

import pytest

from visitmail.domain.delivery_reports import (
    MAX_REPORT_BYTES,
    ReportFormat,
    ReportKind,
    Severity,
    clean_text,
    read_report,
    severity,
)

SAMPLES = Path(__file__).parent / "reports_samples"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def test_postfix_bounce_names_the_recipient_the_status_and_the_original() -> None:
    report = read_report(sample("postfix_bounce.eml"))
    assert report is not None
    assert report.kind is ReportKind.BOUNCE
    assert report.format is ReportFormat.DSN
    assert report.message_ids[0] == "<0190c1f2-7d3e-7b4a-9f00-1c2d3e4f5a6b@acme.example>"
    assert report.reporter == "mx.acme.example"
    [outcome] = report.recipients
    # Original-Recipient (as sent) wins over Final-Recipient, lower-cased.
    assert outcome.address == "nobody@fabrikam.example"
    assert outcome.action == "failed"
    assert outcome.status == "5.1.1"
    assert outcome.severity is Severity.HARD
    assert outcome.remote_mta == "mx.fabrikam.example"
    assert outcome.diagnostic == (
        "550 5.1.1 <nobody@fabrikam.example>: Recipient address rejected: User unknown "
        "in local recipient table"
    )


def test_exchange_online_ndr_is_a_hard_bounce_with_microsofts_words() -> None:
    report = read_report(sample("exchange_online_ndr.eml"))
    assert report is not None
    assert report.kind is ReportKind.BOUNCE
    assert report.message_ids == ("<0190c1f3-0000-7000-8000-00000000abcd@contoso.com>",)
    [outcome] = report.recipients
    assert (outcome.address, outcome.status) == ("lead@fabrikam.example", "5.1.10")
    assert outcome.severity is Severity.HARD
    assert "RESOLVER.ADR.RecipientNotFound" in outcome.diagnostic
    assert "\n" not in outcome.diagnostic


def test_gmail_dsn_folds_googles_multi_line_reply_and_knows_the_original() -> None:
    report = read_report(sample("gmail_dsn.eml"))
    assert report is not None
    assert report.reporter == "googlemail.com"
    assert report.message_ids == ("<0190c1f4-1111-7000-8000-000000001111@acme.example>",)
    [outcome] = report.recipients
    assert outcome.address == "nobody.here.at.all@gmail.com"
    assert outcome.severity is Severity.HARD
    assert outcome.diagnostic.startswith(
        "550-5.1.1 The email account that you tried to reach does not exist."
    )
    assert outcome.remote_mta is not None and "gmail-smtp-in" in outcome.remote_mta


def test_arf_complaint_names_the_complaining_recipient() -> None:
    report = read_report(sample("arf_complaint.eml"))
    assert report is not None
    assert report.kind is ReportKind.COMPLAINT
    assert report.format is ReportFormat.ARF
    assert report.feedback_type == "abuse"
    assert report.reporter == "SomeGenerator/1.0"
    assert report.message_ids == ("<0190c1f5-2222-7000-8000-000000002222@acme.example>",)
    [outcome] = report.recipients
    assert (outcome.address, outcome.action) == ("user@example.com", "complained")
    assert outcome.severity is None


def test_arf_without_original_rcpt_to_falls_back_to_the_returned_to() -> None:
    redacted = sample("arf_complaint.eml").replace(b"Original-Rcpt-To: <User@example.com>\n", b"")
    report = read_report(redacted)
    assert report is not None
    assert [o.address for o in report.recipients] == ["user@example.com"]


def test_not_spam_feedback_is_not_a_complaint() -> None:
    raw = sample("arf_complaint.eml").replace(b"Feedback-Type: abuse", b"Feedback-Type: not-spam")
    assert read_report(raw) is None


def test_qmail_plain_bounce_pairs_the_address_with_the_reply() -> None:
    report = read_report(sample("qmail_bounce.eml"))
    assert report is not None
    assert report.format is ReportFormat.TEXT
    assert report.message_ids == ("<0190c1f6-3333-7000-8000-000000003333@acme.example>",)
    [outcome] = report.recipients
    assert (outcome.address, outcome.status) == ("nobody@example.org", "5.1.1")
    assert outcome.severity is Severity.HARD
    assert outcome.diagnostic == "550 5.1.1 <nobody@example.org>... User unknown"


def test_exim_mailbox_full_is_soft() -> None:
    report = read_report(sample("exim_mailbox_full.eml"))
    assert report is not None
    assert report.message_ids == ("<0190c1f7-4444-7000-8000-000000004444@acme.example>",)
    [outcome] = report.recipients
    assert (outcome.address, outcome.status) == ("lead@example.com", "5.2.2")
    assert outcome.severity is Severity.SOFT


def _dsn_with(action: str, status: str) -> bytes:
    raw = sample("postfix_bounce.eml")
    return raw.replace(b"Action: failed", f"Action: {action}".encode()).replace(
        b"Status: 5.1.1", f"Status: {status}".encode()
    )


def test_a_delay_notice_is_a_delay_not_a_bounce() -> None:
    report = read_report(_dsn_with("delayed", "4.4.1"))
    assert report is not None
    assert report.kind is ReportKind.DELAY
    assert report.recipients[0].severity is None


def test_a_success_notice_is_not_a_report() -> None:
    assert read_report(_dsn_with("delivered", "2.0.0")) is None


def test_global_delivery_status_is_read_like_delivery_status() -> None:
    raw = sample("postfix_bounce.eml").replace(
        b"Content-Type: message/delivery-status", b"Content-Type: message/global-delivery-status"
    )
    report = read_report(raw)
    assert report is not None
    assert [(o.address, o.status) for o in report.recipients] == [
        ("nobody@fabrikam.example", "5.1.1")
    ]


@pytest.mark.parametrize(
    "raw",
    [
        # An out-of-office reply.
        b"From: Lead <lead@example.com>\r\nTo: sales@acme.example\r\n"
        b"Auto-Submitted: auto-replied\r\nSubject: Out of office\r\n\r\n"
        b"I am away until Monday. 550 5.1.1 is not my address.\r\n",
        # A person's answer.
        b"From: Lead <lead@example.com>\r\nSubject: Re: Thanks for visiting us\r\n\r\n"
        b"Thanks, please call me.\r\n",
        # Bytes that are not mail at all.
        b"\x00\xff\xfe garbage \r\n\r\n\x00",
        b"",
        # A report of a type nobody here reads.
        b"Content-Type: multipart/report; report-type=disposition-notification; "
        b"boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nread\r\n--x--\r\n",
    ],
)
def test_mail_that_is_not_a_report_is_none(raw: bytes) -> None:
    assert read_report(raw) is None


def test_oversized_mail_is_not_parsed() -> None:
    raw = sample("postfix_bounce.eml") + b"x" * MAX_REPORT_BYTES
    assert read_report(raw) is None


def test_diagnostics_are_one_bounded_line() -> None:
    raw = sample("postfix_bounce.eml").replace(
        b"    rejected: User unknown in local recipient table\n",
        b"    rejected: \x1b[31m" + b"A" * 5000 + b"\n",
    )
    report = read_report(raw)
    assert report is not None
    text = report.recipients[0].diagnostic
    assert len(text) == 1000 and "\x1b" not in text
    assert clean_text("a\r\n\tb\u2028c") == "a b c"


@pytest.mark.parametrize(
    ("status", "diagnostic", "expected"),
    [
        ("5.1.1", "", Severity.HARD),
        ("5.1.10", "", Severity.HARD),
        ("5.2.1", "", Severity.HARD),
        ("5.1.8", "sender domain unknown", Severity.SOFT),  # the sender's problem
        ("5.2.2", "mailbox full", Severity.SOFT),
        ("5.7.1", "blocked by policy", Severity.SOFT),
        ("5.7.1", "Recipient address rejected: Access denied", Severity.SOFT),
        ("4.4.7", "gave up", Severity.SOFT),
        ("5.0.0", "550 User unknown", Severity.HARD),
        ("5.0.0", "550 message refused", Severity.SOFT),
        (
            "5.4.1",
            "550 5.4.1 Recipient address rejected: Access denied. does not exist",
            Severity.HARD,
        ),
        (None, "550 No such user here", Severity.HARD),
        (None, "451 try later, no such user", Severity.SOFT),
        (None, "", Severity.SOFT),
    ],
)
def test_severity(status: str | None, diagnostic: str, expected: Severity) -> None:
    assert severity(status, diagnostic) is expected
