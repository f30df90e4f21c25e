"""The connection test against a real Postfix submission server (issue 10, item 1): STARTTLS,
Cyrus SASL from a sasldb, and ``reject_sender_login_mismatch``, which Postfix applies at
RCPT TO (``smtpd_delay_reject = yes``). One instance serves the whole module; see
tests/support/postfix_server.py."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator

import pytest
import trustme

from tests.integration.smtp.conftest import settings_for
from tests.support.postfix_server import (
    PostfixAccount,
    PostfixServer,
    PostfixUnavailable,
    start_postfix,
)
from visitmail.adapters.smtp.diagnosis import SmtpConnectionTester
from visitmail.domain.diagnosis import DiagnosisReport, Step, StepName, StepStatus
from visitmail.domain.smtp_settings import Security, SmtpSecrets, SmtpSettings

ALICE = PostfixAccount(
    login="alice@example.org",
    password="Alice-submission-Pa55",
    may_send_as=("alice@example.org",),
)
LEAD = "lead@example.net"


@pytest.fixture(scope="module")
def postfix() -> Iterator[PostfixServer]:
    try:
        server = start_postfix(ca=trustme.CA(), accounts=[ALICE])
    except PostfixUnavailable as e:
        pytest.skip(f"no real Postfix on this machine: {e}")
    try:
        yield server
    finally:
        server.stop()


def settings(server: PostfixServer, *, sender: str) -> SmtpSettings:
    return settings_for(
        host=server.host,
        port=server.port,
        security=Security.STARTTLS,
        ca_pem=server.ca_pem,
        username=ALICE.login,
        sender_email=sender,
    )


def statuses(report: DiagnosisReport) -> dict[str, str]:
    return {s.name.value: s.status.value for s in report.steps}


def step(report: DiagnosisReport, name: StepName) -> Step:
    return next(s for s in report.steps if s.name is name)


async def test_alice_sending_as_herself_passes_every_step(
    postfix: PostfixServer, tester: SmtpConnectionTester
) -> None:
    report = await tester.diagnose(
        settings(postfix, sender=ALICE.login),
        SmtpSecrets(password=ALICE.password),
        send_to=LEAD,
    )

    assert report.ok, (statuses(report), postfix.log())
    assert statuses(report) == {
        "resolve": "passed",
        "connect": "passed",
        "greeting": "passed",
        "ehlo": "passed",
        "tls": "passed",
        "auth": "passed",
        "mail_from": "passed",
        "rcpt_to": "passed",
        "send": "passed",
        "quit": "passed",
    }
    assert step(report, StepName.AUTH).reply_code == 235
    sent = step(report, StepName.SEND)
    assert sent.reply_code == 250
    assert "queued as" in (sent.reply_text or "")
    # Postfix really took the message: its cleanup daemon logged the Message-ID.
    message_id = str(sent.details["message_id"])
    postfix.wait_for_log(f"message-id={message_id}")


async def test_a_sender_alice_does_not_own_is_refused_at_rcpt_to_as_the_sender_problem(
    postfix: PostfixServer, tester: SmtpConnectionTester
) -> None:
    report = await tester.diagnose(
        settings(postfix, sender="boss@example.org"),
        SmtpSecrets(password=ALICE.password),
        send_to=LEAD,
    )

    assert not report.ok
    mail = step(report, StepName.MAIL_FROM)
    assert mail.status is StepStatus.PASSED, statuses(report)
    assert "has not refused boss@example.org as the sender so far" in (mail.explanation or "")
    failed = report.failed_step
    assert failed is not None and failed.name is StepName.RCPT_TO, statuses(report)
    rcpt = step(report, StepName.RCPT_TO)
    assert rcpt.reply_code == 553
    assert "Sender address rejected: not owned by user alice@example.org" in (rcpt.reply_text or "")
    explanation = rcpt.explanation or ""
    assert "refused the sender address" in explanation
    assert "recipient" not in explanation.lower()
    assert "send as" in (rcpt.fix or "").lower()
    assert LEAD not in (rcpt.fix or "")
    assert step(report, StepName.SEND).status is StepStatus.SKIPPED
    postfix.wait_for_log("NOQUEUE: reject: RCPT from")


async def test_a_wrong_password_fails_at_auth_with_535(
    postfix: PostfixServer, tester: SmtpConnectionTester
) -> None:
    wrong = "not-Alice-s-Passw0rd"
    report = await tester.diagnose(
        settings(postfix, sender=ALICE.login), SmtpSecrets(password=wrong), send_to=LEAD
    )

    failed = report.failed_step
    assert failed is not None and failed.name is StepName.AUTH, statuses(report)
    auth = step(report, StepName.AUTH)
    assert auth.reply_code == 535
    assert "check the username and password" in (auth.explanation or "")
    assert "password" in (auth.fix or "")
    assert all(
        s.status is StepStatus.SKIPPED
        for s in report.steps
        if s.name in (StepName.MAIL_FROM, StepName.RCPT_TO, StepName.SEND)
    )
    assert wrong not in json.dumps(dataclasses.asdict(report))
