"""The connection test against a real Postfix submission server (issue 10, item 1): STARTTLS,
Cyrus SASL from a sasldb, and ``reject_sender_login_mismatch``, which Postfix applies at
RCPT TO (``smtpd_delay_reject = yes``); then the delivery engine through the same server.
One instance serves the whole module; see tests/support/postfix_server.py."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
import trustme

from tests.integration.smtp.conftest import settings_for
from tests.support.orgs import OrgFixture
from tests.support.outbox import configure_server, make_worker
from tests.support.postfix_server import (
    PostfixAccount,
    PostfixServer,
    PostfixUnavailable,
    start_postfix,
)
from visitmail.adapters.smtp.diagnosis import SmtpConnectionTester
from visitmail.domain.diagnosis import DiagnosisReport, Step, StepName, StepStatus
from visitmail.domain.outbox import MessageKind, MessageStatus, RecipientStatus
from visitmail.domain.smtp_replies import SmtpReply, names_the_sender, rejects_the_address
from visitmail.domain.smtp_settings import Security, SmtpSecrets, SmtpSettings
from visitmail.runtime import Runtime
from visitmail.services import outbox
from visitmail.services.outbox_ports import MessageView, NewMessage, NewRecipient

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
    message_id = str(sent.details["message_id_header"])
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


# -- the delivery engine through the same Postfix ------------------------------------------


async def enqueue_from(runtime: Runtime, org: OrgFixture, sender: str, to: str) -> uuid.UUID:
    message_id = make_msgid(domain="example.org")
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = to
    mail["Subject"] = "Thanks for visiting"
    mail["Message-ID"] = message_id
    mail.set_content("Thanks for visiting our booth.\n")
    message = NewMessage(
        organization_id=org.organization.id,
        kind=MessageKind.NOTIFICATION,
        idempotency_key=uuid.uuid4().hex,
        message_id=message_id,
        mail_from=sender,
        subject="Thanks for visiting",
        mime=mail.as_bytes(),
        recipients=[NewRecipient(to)],
    )
    async with runtime.uow() as uow:
        result = await outbox.enqueue(uow, message)
        await uow.commit()
    return result.id


async def deliver(
    runtime: Runtime, org: OrgFixture, server: PostfixServer, sender: str
) -> MessageView:
    await configure_server(
        runtime,
        org,
        server.port,
        security=Security.STARTTLS,
        username=ALICE.login,
        password=ALICE.password,
        ca_pem=server.ca_pem,
        sender_email=sender,
    )
    pk = await enqueue_from(runtime, org, sender, LEAD)
    await make_worker(runtime, org).run_until_idle()
    async with runtime.uow() as uow:
        return await outbox.get_message(uow, org.principal, pk)


async def test_the_delivery_engine_sends_alice_s_mail_through_postfix(
    postfix: PostfixServer, runtime: Runtime, org: OrgFixture
) -> None:
    msg = await deliver(runtime, org, postfix, ALICE.login)

    assert msg.status is MessageStatus.SENT, (msg, postfix.log())
    (recipient,) = msg.recipients
    assert recipient.status is RecipientStatus.ACCEPTED
    postfix.wait_for_log(f"message-id={msg.message_id}")


async def test_mail_from_a_sender_alice_does_not_own_fails_without_blaming_the_lead(
    postfix: PostfixServer, runtime: Runtime, org: OrgFixture
) -> None:
    """The 553 comes at RCPT TO, so it is stored on the lead's recipient row: it must be
    kept word for word, and it is not a refusal of the lead's address (issue 10, item 2)."""
    msg = await deliver(runtime, org, postfix, "boss@example.org")

    assert msg.status is MessageStatus.FAILED, (msg, postfix.log())
    assert msg.attempts == 1
    (recipient,) = msg.recipients
    assert recipient.status is RecipientStatus.REJECTED
    assert (recipient.code, recipient.enhanced) == (553, "5.7.1")
    assert "Sender address rejected: not owned by user alice@example.org" in (recipient.text or "")
    reply = SmtpReply(553, recipient.text or "")
    assert names_the_sender(reply)
    assert not rejects_the_address(reply)
