"""The connection test against real aiosmtpd servers (trustme certificates)."""

from __future__ import annotations

import dataclasses
import json
import logging
import time

import pytest

from tests.integration.smtp.conftest import (
    PASSWORD,
    SENDER,
    USER,
    StartServer,
    settings_for,
)
from tests.support.processes import free_port
from tests.support.smtp_servers import Blackhole, Certificates, Script, leaf_sha256
from visitmail.adapters.smtp import open_connection
from visitmail.adapters.smtp.diagnosis import SmtpConnectionTester
from visitmail.domain.diagnosis import DiagnosisReport, PortAnswer, StepName, StepStatus
from visitmail.domain.network_policy import NetworkPolicy
from visitmail.domain.smtp_errors import SmtpStartTlsUnavailable
from visitmail.domain.smtp_settings import AuthMethod, Security, SmtpSecrets, Timeouts

NO_SECRETS = SmtpSecrets()
SECRETS = SmtpSecrets(password=PASSWORD)


def statuses(report: DiagnosisReport) -> dict[str, str]:
    return {step.name.value: step.status.value for step in report.steps}


def step(report: DiagnosisReport, name: StepName):  # type: ignore[no-untyped-def]
    return next(s for s in report.steps if s.name is name)


def assert_failed_at(report: DiagnosisReport, name: StepName) -> None:
    failed = report.failed_step
    assert failed is not None, statuses(report)
    assert failed.name is name, (statuses(report), failed)
    assert failed.fix, failed
    after = [s for s in report.steps if report.steps.index(s) > report.steps.index(failed)]
    assert all(s.status is StepStatus.SKIPPED for s in after), statuses(report)
    assert not report.ok


def as_json(report: DiagnosisReport) -> str:
    return json.dumps(dataclasses.asdict(report))


async def test_implicit_tls_passes_every_step(
    start_server: StartServer, certs: Certificates, tester: SmtpConnectionTester
) -> None:
    server = await start_server(
        security="tls", cert=certs.trusted_leaf, credentials=(USER, PASSWORD)
    )
    settings = settings_for(server, ca_pem=certs.trusted_ca_pem, username=USER)

    report = await tester.diagnose(settings, SECRETS)

    assert report.ok, statuses(report)
    assert statuses(report) == {
        "resolve": "passed",
        "connect": "passed",
        "greeting": "passed",
        "ehlo": "passed",
        "tls": "passed",
        "auth": "passed",
        "mail_from": "passed",
        "rcpt_to": "passed",
        "send": "skipped",
        "quit": "passed",
    }
    tls_step = step(report, StepName.TLS)
    assert tls_step.details["protocol"] in ("TLSv1.2", "TLSv1.3")
    assert "subject" in tls_step.details and "issuer" in tls_step.details
    assert "not_after" in tls_step.details
    assert step(report, StepName.GREETING).reply_code == 220
    assert step(report, StepName.AUTH).reply_code == 235
    assert step(report, StepName.MAIL_FROM).reply_code == 250
    assert server.recorder.messages == []
    assert "RSET" in server.recorder.commands


async def test_starttls_passes_and_lists_capabilities(
    start_server: StartServer, certs: Certificates, tester: SmtpConnectionTester
) -> None:
    server = await start_server(security="starttls", cert=certs.trusted_leaf)
    settings = settings_for(server, ca_pem=certs.trusted_ca_pem)

    report = await tester.diagnose(settings, NO_SECRETS)

    assert report.ok, statuses(report)
    assert step(report, StepName.AUTH).status is StepStatus.SKIPPED
    ehlo = step(report, StepName.EHLO)
    assert any(c.startswith("STARTTLS") for c in ehlo.details["capabilities"])  # type: ignore[union-attr]
    tls_step = step(report, StepName.TLS)
    assert tls_step.status is StepStatus.PASSED
    assert tls_step.reply_code == 220
    assert server.recorder.commands.index("STARTTLS") < server.recorder.commands.index("MAIL")


async def test_auth_passes_with_right_password_over_starttls(
    start_server: StartServer, certs: Certificates, tester: SmtpConnectionTester
) -> None:
    server = await start_server(
        security="starttls", cert=certs.trusted_leaf, credentials=(USER, PASSWORD)
    )
    settings = settings_for(server, ca_pem=certs.trusted_ca_pem, username=USER)

    report = await tester.diagnose(settings, SECRETS)

    assert report.ok, statuses(report)
    auth = step(report, StepName.AUTH)
    assert auth.reply_code == 235
    assert auth.details["mechanism"] == "PLAIN"
    assert server.recorder.auth_logins == [USER]


async def test_auth_login_mechanism_when_chosen(
    start_server: StartServer, certs: Certificates, tester: SmtpConnectionTester
) -> None:
    server = await start_server(
        security="tls", cert=certs.trusted_leaf, credentials=(USER, PASSWORD)
    )
    settings = settings_for(
        server, ca_pem=certs.trusted_ca_pem, username=USER, auth_method=AuthMethod.LOGIN
    )

    report = await tester.diagnose(settings, SECRETS)

    assert report.ok, statuses(report)
    assert step(report, StepName.AUTH).details["mechanism"] == "LOGIN"


async def test_wrong_password_fails_at_auth_with_535(
    start_server: StartServer, certs: Certificates, tester: SmtpConnectionTester
) -> None:
    server = await start_server(
        security="tls", cert=certs.trusted_leaf, credentials=(USER, PASSWORD)
    )
    settings = settings_for(server, ca_pem=certs.trusted_ca_pem, username=USER)
    wrong = "not-the-Passw0rd!"

    report = await tester.diagnose(settings, SmtpSecrets(password=wrong))

    assert_failed_at(report, StepName.AUTH)
    auth = step(report, StepName.AUTH)
    assert auth.reply_code == 535
    assert auth.explanation == "535 Authentication failed: check the username and password."
    assert "password" in (auth.fix or "")
    assert wrong not in as_json(report)


async def test_self_signed_certificate_fails_then_passes_with_ca_and_pin(
    start_server: StartServer, certs: Certificates, tester: SmtpConnectionTester
) -> None:
    server = await start_server(
        security="starttls", cert=certs.untrusted_leaf, credentials=(USER, PASSWORD)
    )

    report = await tester.diagnose(settings_for(server, username=USER), SECRETS)

    assert_failed_at(report, StepName.TLS)
    tls_step = step(report, StepName.TLS)
    assert "certificate" in (tls_step.explanation or "")
    assert "custom CA" in (tls_step.fix or "") and "pin" in (tls_step.fix or "")
    pin = leaf_sha256(certs.untrusted_leaf)
    shown = str(tls_step.details["certificate_sha256"]).replace(":", "").lower()
    assert shown == pin
    assert not server.saw_auth  # nothing after the failed handshake

    with_ca = settings_for(server, username=USER, ca_pem=certs.untrusted_ca_pem)
    assert (await tester.diagnose(with_ca, SECRETS)).ok

    pinned = await tester.diagnose(settings_for(server, username=USER, pin=pin), SECRETS)
    assert pinned.ok, statuses(pinned)
    assert "pinned" in (step(pinned, StepName.TLS).explanation or "")


async def test_pin_works_with_implicit_tls_and_wrong_pin_is_refused(
    start_server: StartServer, certs: Certificates, tester: SmtpConnectionTester
) -> None:
    server = await start_server(
        security="tls", cert=certs.untrusted_leaf, credentials=(USER, PASSWORD)
    )
    pin = leaf_sha256(certs.untrusted_leaf)

    ok = await tester.diagnose(settings_for(server, username=USER, pin=pin), SECRETS)
    assert ok.ok, statuses(ok)

    wrong_pin = "sha256:" + ":".join(["ab"] * 32)
    report = await tester.diagnose(settings_for(server, username=USER, pin=wrong_pin), SECRETS)
    assert_failed_at(report, StepName.TLS)
    assert "pinned" in (step(report, StepName.TLS).explanation or "")
    assert server.recorder.auth_logins == [USER]  # only from the first, pinned-right run


async def test_expected_pin_mismatch_with_starttls_sends_no_auth(
    start_server: StartServer, certs: Certificates, tester: SmtpConnectionTester
) -> None:
    server = await start_server(
        security="starttls", cert=certs.trusted_leaf, credentials=(USER, PASSWORD)
    )
    wrong_pin = "00" * 32
    report = await tester.diagnose(settings_for(server, username=USER, pin=wrong_pin), SECRETS)
    assert_failed_at(report, StepName.TLS)
    assert not server.saw_auth


async def test_starttls_not_offered_fails_at_tls_and_sends_no_password(
    start_server: StartServer, tester: SmtpConnectionTester
) -> None:
    # The server would accept AUTH in plain text: the client must not try.
    server = await start_server(
        security="none", credentials=(USER, PASSWORD), auth_require_tls=False
    )
    settings = settings_for(server, security=Security.STARTTLS, username=USER)

    report = await tester.diagnose(settings, SECRETS)

    assert_failed_at(report, StepName.TLS)
    explanation = step(report, StepName.TLS).explanation or ""
    tls_step = step(report, StepName.TLS)
    assert f"Port {server.port} speaks plain SMTP without STARTTLS" in explanation
    assert "the password was not sent" in explanation
    # The advice ends: both ways forward, with the warning that goes with `none`.
    fix = tls_step.fix or ""
    assert "465 with `tls` or 587 with `starttls`" in fix
    assert f"choose `none` for port {server.port}" in fix
    assert "unencrypted" in fix and "trusted network" in fix
    assert "VISITMAIL_ALLOW_PLAINTEXT_AUTH" in fix
    assert server.recorder.commands == ["EHLO"]
    assert not server.saw_auth
    assert server.recorder.auth_logins == []


async def test_no_encryption_refuses_to_send_a_password(
    start_server: StartServer, tester: SmtpConnectionTester
) -> None:
    server = await start_server(
        security="none", credentials=(USER, PASSWORD), auth_require_tls=False
    )
    settings = settings_for(server, security=Security.NONE, username=USER)

    report = await tester.diagnose(settings, SECRETS)

    assert_failed_at(report, StepName.AUTH)
    assert "not encrypted" in (step(report, StepName.AUTH).explanation or "")
    assert not server.saw_auth
    assert any("not encrypted" in w for w in report.warnings)

    allowed = SmtpConnectionTester(tester.policy, allow_plaintext_auth=True)
    assert (await allowed.diagnose(settings, SECRETS)).ok


async def test_rejected_sender_fails_at_mail_from(
    start_server: StartServer, certs: Certificates, tester: SmtpConnectionTester
) -> None:
    server = await start_server(
        security="starttls", cert=certs.trusted_leaf, reject_sender="boss@example.org"
    )
    settings = settings_for(server, ca_pem=certs.trusted_ca_pem, sender_email="boss@example.org")

    report = await tester.diagnose(settings, NO_SECRETS)

    assert_failed_at(report, StepName.MAIL_FROM)
    mail = step(report, StepName.MAIL_FROM)
    assert mail.reply_code == 553
    assert "not allowed to send as this sender" in (mail.explanation or "")
    assert "verify" in (mail.fix or "")
    assert (mail.reply_text or "").startswith("5.7.1")


POSTFIX_SENDER_REFUSAL = (
    "553 5.7.1 <boss@example.org>: Sender address rejected: not owned by user alice@example.org"
)


async def test_a_sender_refused_at_rcpt_to_is_explained_as_the_sender_problem(
    start_server: StartServer, certs: Certificates, tester: SmtpConnectionTester
) -> None:
    """Issue 10, item 1: Postfix (smtpd_delay_reject = yes) says 250 to MAIL FROM and
    refuses the sender at RCPT TO; the report must blame the sender, not the recipient."""
    server = await start_server(
        security="starttls",
        cert=certs.trusted_leaf,
        script=Script(rcpt=lambda _address: POSTFIX_SENDER_REFUSAL),
    )
    settings = settings_for(server, ca_pem=certs.trusted_ca_pem, sender_email="boss@example.org")

    report = await tester.diagnose(settings, NO_SECRETS, send_to="lead@example.net")

    mail = step(report, StepName.MAIL_FROM)
    assert mail.status is StepStatus.PASSED
    assert "has not refused boss@example.org as the sender so far" in mail.explanation
    assert_failed_at(report, StepName.RCPT_TO)
    rcpt = step(report, StepName.RCPT_TO)
    assert rcpt.reply_code == 553
    assert "refused the sender address" in (rcpt.explanation or "")
    assert "recipient" not in (rcpt.explanation or "")
    assert "send as" in (rcpt.fix or "").lower()
    assert "not owned by user" in (rcpt.reply_text or "")


async def test_send_as_denied_after_the_message_is_the_sender_problem(
    start_server: StartServer, certs: Certificates, tester: SmtpConnectionTester
) -> None:
    """Microsoft 365 refuses a sender the mailbox may not send as after the final dot."""
    server = await start_server(
        security="starttls",
        cert=certs.trusted_leaf,
        script=Script(
            data=lambda _n: (
                "554 5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException."
                "MapiExceptionSendAsDenied; Failed to process message due to a permanent exception"
            )
        ),
    )
    settings = settings_for(server, ca_pem=certs.trusted_ca_pem, sender_email="boss@example.org")

    report = await tester.diagnose(settings, NO_SECRETS, send_to="lead@example.net")

    assert_failed_at(report, StepName.SEND)
    sent = step(report, StepName.SEND)
    assert "refused the sender address" in (sent.explanation or "")
    assert "Send As" in (sent.fix or "")


async def test_a_recipient_refusal_is_still_the_recipient_problem(
    start_server: StartServer, certs: Certificates, tester: SmtpConnectionTester
) -> None:
    server = await start_server(
        security="starttls",
        cert=certs.trusted_leaf,
        script=Script(
            rcpt=lambda _address: (
                "550 5.1.1 <nobody@example.net>: Recipient address "
                "rejected: User unknown in local recipient table"
            )
        ),
    )
    settings = settings_for(server, ca_pem=certs.trusted_ca_pem)

    report = await tester.diagnose(settings, NO_SECRETS, send_to="nobody@example.net")

    assert_failed_at(report, StepName.RCPT_TO)
    assert "test recipient" in (step(report, StepName.RCPT_TO).explanation or "")


async def test_sender_domain_warning_is_reported(
    start_server: StartServer, certs: Certificates, tester: SmtpConnectionTester
) -> None:
    server = await start_server(
        security="tls", cert=certs.trusted_leaf, credentials=(USER, PASSWORD)
    )
    settings = settings_for(
        server, ca_pem=certs.trusted_ca_pem, username=USER, sender_email="sales@example.org"
    )
    report = await tester.diagnose(settings, SECRETS)
    assert report.ok
    assert any("example.org" in w for w in report.warnings)


async def test_send_to_delivers_a_test_mail(
    start_server: StartServer, certs: Certificates, tester: SmtpConnectionTester
) -> None:
    server = await start_server(
        security="tls", cert=certs.trusted_leaf, credentials=(USER, PASSWORD)
    )
    settings = settings_for(
        server, ca_pem=certs.trusted_ca_pem, username=USER, sender_name="Alice Example"
    )

    report = await tester.diagnose(settings, SECRETS, send_to="bob@example.com")

    assert report.ok, statuses(report)
    send = step(report, StepName.SEND)
    assert send.status is StepStatus.PASSED
    assert send.reply_code == 250
    assert len(server.recorder.messages) == 1
    received = server.recorder.messages[0]
    assert received.mail_from == SENDER
    assert received.rcpt_tos == ["bob@example.com"]
    message = received.parsed()
    assert message["From"] == f"Alice Example <{SENDER}>"
    assert message["To"] == "bob@example.com"
    assert message["Subject"] == "visitmail connection test"
    assert message["Message-ID"] == send.details["message_id_header"]
    assert message["Date"]
    assert "connection test" in message.get_content()


async def test_tls_chosen_against_a_plain_port_names_starttls_and_465(
    start_server: StartServer, certs: Certificates, tester: SmtpConnectionTester
) -> None:
    server = await start_server(security="starttls", cert=certs.trusted_leaf)
    settings = settings_for(server, security=Security.TLS, ca_pem=certs.trusted_ca_pem)

    report = await tester.diagnose(settings, NO_SECRETS)

    assert_failed_at(report, StepName.TLS)
    assert step(report, StepName.TLS).explanation == (
        f"The server speaks plain SMTP on port {server.port} but `tls` was chosen: "
        "choose STARTTLS, or port 465."
    )
    assert step(report, StepName.GREETING).status is StepStatus.SKIPPED


async def test_starttls_chosen_against_implicit_tls_port_times_out_at_greeting(
    start_server: StartServer, certs: Certificates, tester: SmtpConnectionTester
) -> None:
    server = await start_server(security="tls", cert=certs.trusted_leaf)
    settings = settings_for(
        server, security=Security.STARTTLS, ca_pem=certs.trusted_ca_pem, overall=1.5
    )
    report = await tester.diagnose(settings, NO_SECRETS)
    assert_failed_at(report, StepName.GREETING)
    assert "implicit TLS" in (step(report, StepName.GREETING).explanation or "")


async def test_closed_port_is_connection_refused(
    tester: SmtpConnectionTester,
) -> None:
    settings = settings_for(port=free_port(), security=Security.STARTTLS)
    report = await tester.diagnose(settings, NO_SECRETS)
    assert_failed_at(report, StepName.CONNECT)
    assert "refused the connection" in (step(report, StepName.CONNECT).explanation or "")
    assert "port" in (step(report, StepName.CONNECT).fix or "")


async def test_blackholed_address_fails_at_connect_within_the_bound(
    tester: SmtpConnectionTester,
) -> None:
    bound = 2.0
    with Blackhole() as hole:
        settings = settings_for(
            host=hole.host, port=hole.port, security=Security.STARTTLS, overall=bound
        )
        settings = dataclasses.replace(
            settings, timeouts=Timeouts(connect=10, command=10, overall=bound)
        )
        started = time.monotonic()
        report = await tester.diagnose(settings, NO_SECRETS)
        elapsed = time.monotonic() - started

    assert elapsed < bound + 3  # the bound holds (slack for a loaded CI machine)
    assert_failed_at(report, StepName.CONNECT)
    connect = step(report, StepName.CONNECT)
    assert "blackholed" in (connect.explanation or "")
    assert "within 2 s" in (connect.explanation or "")


async def test_connect_timeout_is_shorter_than_the_overall_bound(
    tester: SmtpConnectionTester,
) -> None:
    with Blackhole() as hole:
        settings = settings_for(host=hole.host, port=hole.port, overall=5)
        settings = dataclasses.replace(
            settings, timeouts=Timeouts(connect=0.5, command=5, overall=5)
        )
        started = time.monotonic()
        report = await tester.diagnose(settings, NO_SECRETS)
        assert time.monotonic() - started < 4  # the 0.5 s connect timeout, not the 5 s bound

    assert_failed_at(report, StepName.CONNECT)
    assert "within 0.5 s" in (step(report, StepName.CONNECT).explanation or "")


async def test_loopback_is_refused_by_default_policy_like_a_private_address(
    start_server: StartServer,
) -> None:
    server = await start_server(security="none")
    default = SmtpConnectionTester(NetworkPolicy())

    async def private_name(host: str, port: int) -> list[str]:
        return ["10.1.2.3"]

    loopback = await default.diagnose(settings_for(server, host="127.0.0.1"), NO_SECRETS)
    named = await SmtpConnectionTester(NetworkPolicy(), resolver=private_name).diagnose(
        settings_for(server, host="smtp.internal.test"), NO_SECRETS
    )
    metadata = await default.diagnose(settings_for(server, host="169.254.169.254"), NO_SECRETS)

    for report in (loopback, named, metadata):
        assert_failed_at(report, StepName.RESOLVE)
    texts = [step(r, StepName.RESOLVE).explanation or "" for r in (loopback, named, metadata)]
    # Same words whatever is behind the address (only the host name the user typed differs).
    assert texts[0] == texts[2].replace("169.254.169.254", "127.0.0.1")
    assert texts[1] == texts[0].replace("127.0.0.1", "smtp.internal.test")
    assert "10.1.2.3" not in texts[1]
    assert server.recorder.connections == 0


async def test_unknown_host_fails_at_resolve(tester: SmtpConnectionTester) -> None:
    settings = settings_for(host="no-such-host.invalid", port=25)
    report = await tester.diagnose(settings, NO_SECRETS)
    assert_failed_at(report, StepName.RESOLVE)
    assert "could not be resolved" in (step(report, StepName.RESOLVE).explanation or "")


async def test_password_never_appears_in_reports_or_logs(
    start_server: StartServer,
    certs: Certificates,
    tester: SmtpConnectionTester,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    ok_server = await start_server(
        security="starttls", cert=certs.trusted_leaf, credentials=(USER, PASSWORD)
    )
    plain_server = await start_server(
        security="none", credentials=(USER, PASSWORD), auth_require_tls=False
    )
    untrusted = await start_server(security="tls", cert=certs.untrusted_leaf)
    secrets = SmtpSecrets(password=PASSWORD, proxy_password=PASSWORD + "-proxy")
    runs = [
        settings_for(ok_server, ca_pem=certs.trusted_ca_pem, username=USER),
        settings_for(plain_server, security=Security.STARTTLS, username=USER),
        settings_for(plain_server, security=Security.NONE, username=USER),
        settings_for(untrusted, username=USER),
    ]
    reports = [await tester.diagnose(s, secrets, send_to="bob@example.com") for s in runs]
    reports.append(await tester.diagnose(runs[0], SmtpSecrets(password=PASSWORD[::-1])))

    for report in reports:
        text = as_json(report)
        assert PASSWORD not in text
        assert PASSWORD[::-1] not in text
    assert reports[0].ok
    assert PASSWORD not in caplog.text
    for record in caplog.records:
        assert PASSWORD not in str(record.__dict__)


# -- auto-detect -------------------------------------------------------------------------


async def test_recommends_starttls_on_a_custom_port(
    start_server: StartServer, certs: Certificates, patient_tester: SmtpConnectionTester
) -> None:
    server = await start_server(
        security="starttls", cert=certs.trusted_leaf, credentials=(USER, PASSWORD)
    )
    # The admin guessed wrong: implicit TLS on the STARTTLS port. No candidate hangs here
    # (each works or is refused at once), so no time bound decides the result: a 2 s
    # bound (and a wall-clock check of the total) failed on a loaded machine.
    settings = settings_for(
        server, security=Security.TLS, ca_pem=certs.trusted_ca_pem, username=USER, overall=60
    )

    report = await patient_tester.autodetect(settings, SmtpSecrets(password=PASSWORD))

    assert report.recommended is not None
    assert (report.recommended.port, report.recommended.security) == (server.port, "starttls")
    tried = {(c.port, c.security): c for c in report.candidates}
    assert {
        (465, "tls"),
        (587, "starttls"),
        (25, "starttls"),
        (2525, "starttls"),
        (25, "none"),
    } <= (set(tried))
    assert not tried[(server.port, "tls")].ok
    assert "STARTTLS" in tried[(server.port, "tls")].summary
    assert tried[(server.port, "starttls")].ok
    assert "PLAIN" in tried[(server.port, "starttls")].summary
    # Auto-detect stops before MAIL FROM.
    assert "MAIL" not in server.recorder.commands
    assert PASSWORD not in repr(report)


async def test_recommends_implicit_tls_over_plain(
    start_server: StartServer, certs: Certificates, tester: SmtpConnectionTester
) -> None:
    server = await start_server(security="tls", cert=certs.trusted_leaf)
    settings = settings_for(server, security=Security.NONE, ca_pem=certs.trusted_ca_pem)
    report = await tester.autodetect(settings, SmtpSecrets())
    assert report.recommended is not None
    assert (report.recommended.port, report.recommended.security) == (server.port, "tls")


async def test_plain_only_server_is_recommended_with_a_warning(
    start_server: StartServer, patient_tester: SmtpConnectionTester
) -> None:
    server = await start_server(security="none")
    report = await patient_tester.autodetect(settings_for(server, overall=60), SmtpSecrets())
    assert report.recommended is not None
    assert (report.recommended.port, report.recommended.security) == (server.port, "none")
    assert "Only an unencrypted connection works" in report.recommended.summary


async def test_autodetect_says_what_each_port_answered_for_plain_smtp_on_a_custom_port(
    start_server: StartServer, tester: SmtpConnectionTester
) -> None:
    # A plain server without STARTTLS on a port none of the usual ones; the admin typed
    # that port with `starttls`.
    server = await start_server(security="none")
    settings = settings_for(server, security=Security.STARTTLS, overall=60)

    report = await tester.autodetect(settings, SmtpSecrets())

    answered = {p.port: (p.answer, p.text) for p in report.ports}
    assert answered[server.port] == (
        PortAnswer.PLAIN_NO_STARTTLS,
        "plain SMTP without STARTTLS (not encrypted)",
    )
    # The usual ports are tried too; nothing listens there on 127.0.0.1.
    for usual in (465, 587, 25, 2525):
        assert answered[usual][0] in (PortAnswer.REFUSED, PortAnswer.TIMED_OUT)
    assert [p.port for p in report.ports][:2] == [465, 587]
    tried = {(c.port, c.security): c for c in report.candidates}
    assert tried[(server.port, "starttls")].answer is PortAnswer.PLAIN_NO_STARTTLS
    assert "speaks plain SMTP without STARTTLS" in tried[(server.port, "starttls")].summary
    assert tried[(server.port, "tls")].answer is PortAnswer.PLAIN
    assert report.recommended is not None
    assert (report.recommended.port, report.recommended.security) == (server.port, "none")


async def test_autodetect_names_tls_and_starttls_ports(
    start_server: StartServer, certs: Certificates, tester: SmtpConnectionTester
) -> None:
    tls_server = await start_server(security="tls", cert=certs.trusted_leaf)
    starttls_server = await start_server(security="starttls", cert=certs.trusted_leaf)
    for server, expected in ((tls_server, PortAnswer.TLS), (starttls_server, PortAnswer.STARTTLS)):
        settings = settings_for(server, security=Security.NONE, ca_pem=certs.trusted_ca_pem)
        report = await tester.autodetect(settings, SmtpSecrets())
        answered = {p.port: p.answer for p in report.ports}
        assert answered[server.port] is expected


async def test_nothing_works_recommends_nothing(tester: SmtpConnectionTester) -> None:
    report = await tester.autodetect(settings_for(port=free_port()), SmtpSecrets())
    assert report.recommended is None
    assert all(not c.ok for c in report.candidates)
    assert all("connect" in c.summary for c in report.candidates)


async def test_autodetect_with_a_rejected_password_still_finds_the_port(
    start_server: StartServer, certs: Certificates, tester: SmtpConnectionTester
) -> None:
    server = await start_server(
        security="tls", cert=certs.trusted_leaf, credentials=(USER, PASSWORD)
    )
    settings = settings_for(server, ca_pem=certs.trusted_ca_pem, username=USER)
    report = await tester.autodetect(settings, SmtpSecrets(password="wrong-one"))
    assert report.recommended is not None
    assert (report.recommended.port, report.recommended.security) == (server.port, "tls")
    assert "535" in report.recommended.summary


# -- open_connection (the delivery engine's entry point) ------------------------------------


async def test_open_connection_returns_an_authenticated_client(
    start_server: StartServer, certs: Certificates, policy: NetworkPolicy
) -> None:
    server = await start_server(
        security="starttls", cert=certs.trusted_leaf, credentials=(USER, PASSWORD)
    )
    settings = settings_for(server, ca_pem=certs.trusted_ca_pem, username=USER)

    client = await open_connection(settings, SECRETS, policy, allow_plaintext_auth=False)
    try:
        await client.sendmail(SENDER, ["bob@example.com"], b"Subject: hi\r\n\r\nhello\r\n")
    finally:
        await client.quit()

    assert server.recorder.auth_logins == [USER]
    assert len(server.recorder.messages) == 1


async def test_open_connection_raises_domain_errors(
    start_server: StartServer, policy: NetworkPolicy
) -> None:
    server = await start_server(
        security="none", credentials=(USER, PASSWORD), auth_require_tls=False
    )
    settings = settings_for(server, security=Security.STARTTLS, username=USER)

    with pytest.raises(SmtpStartTlsUnavailable) as info:
        await open_connection(settings, SECRETS, policy, allow_plaintext_auth=True)

    assert info.value.stage is StepName.TLS
    assert not server.saw_auth
