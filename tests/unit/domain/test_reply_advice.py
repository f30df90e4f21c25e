"""The reply explainer (domain.reply_advice): each Microsoft 365 / Google reply, exactly as
the server sends it on the wire, gives its topic and fix; temporary or permanent stays the
classifier's decision by code."""

from __future__ import annotations

import base64
import json

import pytest

from visitmail.domain.reply_advice import (
    GOOGLE,
    MICROSOFT,
    ReplyTopic,
    advise,
    advise_stored,
    xoauth2_challenge,
)
from visitmail.domain.smtp_replies import (
    ReplyClass,
    SmtpReply,
    classify,
    names_the_sender,
    rejects_the_address,
)


def wire(raw: str) -> SmtpReply:
    """The reply as aiosmtplib hands it over: the code, then each line's text after the
    code and separator, joined by newlines."""
    lines = raw.split("\r\n")
    return SmtpReply(int(lines[0][:3]), "\n".join(line[4:].strip() for line in lines))


def _challenge(payload: dict[str, str]) -> str:
    return "334 " + base64.b64encode(json.dumps(payload).encode()).decode()


CASES: list[tuple[str, ReplyTopic, str | None, ReplyClass, str]] = [
    (
        "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for "
        "the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. "
        "[AM0PR02CA0001.eurprd02.prod.outlook.com 2026-12-02T06:40:00.000Z 08DD0A]",
        ReplyTopic.SMTP_AUTH_DISABLED,
        MICROSOFT,
        ReplyClass.PERMANENT,
        "Set-TransportConfig -SmtpClientAuthenticationDisabled $false",
    ),
    (
        "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for "
        "the Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information.",
        ReplyTopic.SMTP_AUTH_DISABLED,
        MICROSOFT,
        ReplyClass.PERMANENT,
        "Manage email apps",
    ),
    (
        "535 5.7.139 Authentication unsuccessful, user is locked by your organization's "
        "security defaults policy. Contact your administrator. [DB8PR04CA0012]",
        ReplyTopic.BASIC_AUTH_BLOCKED,
        MICROSOFT,
        ReplyClass.PERMANENT,
        "OAuth2",
    ),
    (
        "535 5.7.139 Authentication unsuccessful, basic authentication is disabled. "
        "[PR3P191CA0033.EURP191.PROD.OUTLOOK.COM]",
        ReplyTopic.BASIC_AUTH_BLOCKED,
        MICROSOFT,
        ReplyClass.PERMANENT,
        "December 2026",
    ),
    (
        "535 5.7.139 Authentication unsuccessful, the request did not meet the criteria to "
        "be authenticated successfully. Contact your administrator.",
        ReplyTopic.SIGN_IN_BLOCKED,
        MICROSOFT,
        ReplyClass.PERMANENT,
        "Sign-in logs",
    ),
    (
        "535 5.7.139 Authentication unsuccessful, the user credentials were incorrect. "
        "[VI1PR0102CA0017.eurprd01.prod.exchangelabs.com]",
        ReplyTopic.CREDENTIALS_REJECTED,
        MICROSOFT,
        ReplyClass.PERMANENT,
        "re-enter the password",
    ),
    (
        "535 5.7.3 Authentication unsuccessful [SN4PR0601CA0003.namprd06.prod.outlook.com]",
        ReplyTopic.APP_NOT_PERMITTED,
        MICROSOFT,
        ReplyClass.PERMANENT,
        "Add-MailboxPermission -Identity <mailbox> -User <service principal id> "
        "-AccessRights FullAccess",
    ),
    (
        "550 5.7.30 Basic authentication is not supported for Client Submission. "
        "[BN9PR03CA0017.namprd03.prod.outlook.com]",
        ReplyTopic.BASIC_AUTH_BLOCKED,
        MICROSOFT,
        ReplyClass.PERMANENT,
        "Switch the authentication method to OAuth2",
    ),
    (
        "554 5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAs"
        "Denied; Failed to process message due to a permanent exception with message "
        "[BeginDiagnosticData]Cannot submit message. 0.35250:0A00C184, 1.36674:0A000000 "
        "[Hostname=AM9PR02MB7148.eurprd02.prod.outlook.com]",
        ReplyTopic.SENDER_NOT_ALLOWED,
        MICROSOFT,
        ReplyClass.PERMANENT,
        "Add-RecipientPermission <sender> -AccessRights SendAs -Trustee <account>",
    ),
    (
        "550 5.7.60 SMTP; Client does not have permissions to send as this sender "
        "[AM6P193CA0120.EURP193.PROD.OUTLOOK.COM]",
        ReplyTopic.SENDER_NOT_ALLOWED,
        MICROSOFT,
        ReplyClass.PERMANENT,
        "Send as",
    ),
    (
        "554 5.7.0 SMTP; Client does not have permissions to send as this sender",
        ReplyTopic.SENDER_NOT_ALLOWED,
        MICROSOFT,
        ReplyClass.PERMANENT,
        "mailbox's own address",
    ),
    (
        "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded "
        "[Hostname=DB9PR02MB7226.eurprd02.prod.outlook.com]",
        ReplyTopic.TOO_MANY_CONNECTIONS,
        MICROSOFT,
        ReplyClass.TEMPORARY,
        "limits.max_connections) to 3 or less",
    ),
    (
        "451 4.7.500 Server busy. Please try again later from [203.0.113.5]. (S77719) "
        "[MW2NAM10FT010.eop-nam10.prod.protection.outlook.com]",
        ReplyTopic.SERVER_BUSY,
        MICROSOFT,
        ReplyClass.THROTTLED,
        "30 per minute",
    ),
    (
        "421 4.7.66 TLS 1.0 and 1.1 are not supported. Please upgrade/update your client to "
        "support TLS 1.2. Visit https://aka.ms/smtp_auth_tls. [AM0PR10CA0001]",
        ReplyTopic.OLD_TLS,
        MICROSOFT,
        ReplyClass.TEMPORARY,
        "TLS 1.2",
    ),
    (
        "550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP. "
        "For more information please go to http://go.microsoft.com/fwlink/?LinkId=526653 "
        "AS(5760) [DM6NAM11FT003.eop-nam11.prod.protection.outlook.com]",
        ReplyTopic.IP_REFUSED,
        MICROSOFT,
        ReplyClass.PERMANENT,
        "different IP address",
    ),
    # Google ------------------------------------------------------------------------------
    (
        "535-5.7.8 Username and Password not accepted. For more information, go to\r\n"
        "535 5.7.8  https://support.google.com/mail/?p=BadCredentials "
        "a640c23a62f3a-a9a0f2d5e6fsm123456766b.12 - gsmtp",
        ReplyTopic.CREDENTIALS_REJECTED,
        GOOGLE,
        ReplyClass.PERMANENT,
        "app password",
    ),
    (
        "534-5.7.9 Application-specific password required. For more information, go to\r\n"
        "534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor "
        "d9443c01a7336-20b0f2d5e6fsm1234567b.12 - gsmtp",
        ReplyTopic.APP_PASSWORD_REQUIRED,
        GOOGLE,
        ReplyClass.PERMANENT,
        "App passwords",
    ),
    (
        "530-5.7.0 Authentication Required. For more information, go to\r\n"
        "530 5.7.0  https://support.google.com/mail/?p=WantAuthError "
        "ffacd0b85a97d-37d1c2d5e6fsm1234567f8f.12 - gsmtp",
        ReplyTopic.AUTH_REQUIRED,
        None,
        ReplyClass.PERMANENT,
        "Set the username and password",
    ),
    (
        "550-5.4.5 Daily user sending limit exceeded. For more information on Gmail\r\n"
        "550-5.4.5 sending limits go to\r\n"
        "550 5.4.5  https://support.google.com/a/answer/166852 "
        "5b1f17b1804b1-43116d5e6fsm12345675e9.12 - gsmtp",
        ReplyTopic.SENDING_LIMIT,
        GOOGLE,
        ReplyClass.PERMANENT,
        "within 24 hours",
    ),
    (
        "421-4.7.0 Try again later, closing connection. (EHLO)\r\n"
        "421 4.7.0  For more information, go to https://support.google.com/a/answer/3221692 "
        "d75a77b69052e-4608d5e6fsm1234567c1d.12 - gsmtp",
        ReplyTopic.SERVER_BUSY,
        GOOGLE,
        ReplyClass.THROTTLED,
        "lower the messages per minute",
    ),
    (
        "454-4.7.0 Too many login attempts, please try again later. For more information, "
        "go to\r\n454 4.7.0  https://support.google.com/mail/answer/7126229 "
        "2adb3069b0e04-539c2d5e6fsm1234567e87.12 - gsmtp",
        ReplyTopic.TOO_MANY_LOGINS,
        GOOGLE,
        ReplyClass.THROTTLED,
        "Wait before the next attempt",
    ),
]


@pytest.mark.parametrize(("raw", "topic", "provider", "kind", "fix"), CASES)
def test_each_provider_reply_is_explained_with_its_fix(
    raw: str, topic: ReplyTopic, provider: str | None, kind: ReplyClass, fix: str
) -> None:
    reply = wire(raw)
    advice = advise(reply.code, reply.text)
    assert advice is not None, raw
    assert advice.topic is topic
    assert advice.provider == provider
    assert fix in advice.fix
    assert classify(reply) is kind  # the retry decision stays with the code


def test_the_sender_family_is_the_sender_and_never_the_recipients_address() -> None:
    for raw, topic, *_ in CASES:
        reply = wire(raw)
        about_sender = names_the_sender(reply)
        assert about_sender is (topic is ReplyTopic.SENDER_NOT_ALLOWED), raw
        if about_sender:
            assert not rejects_the_address(reply)


def test_any_servers_sender_refusal_gets_the_generic_sender_advice() -> None:
    reply = wire("553 5.7.1 <boss@example.com>: Sender address rejected: not owned by user")
    advice = advise(reply.code, reply.text)
    assert advice is not None
    assert advice.topic is ReplyTopic.SENDER_NOT_ALLOWED
    assert advice.provider is None


@pytest.mark.parametrize(
    "raw",
    [
        "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown",
        "451 4.3.0 Temporary lookup failure",
        "250 2.0.0 OK queued",
        "535 5.7.8 Authentication credentials invalid",
    ],
)
def test_replies_no_rule_knows_get_no_advice(raw: str) -> None:
    reply = wire(raw)
    assert advise(reply.code, reply.text) is None


def test_google_xoauth2_challenge_is_decoded() -> None:
    raw = _challenge({"status": "400", "schemes": "Bearer", "scope": "https://mail.google.com/"})
    reply = wire(raw)
    assert xoauth2_challenge(reply.text) == {
        "status": "400",
        "schemes": "Bearer",
        "scope": "https://mail.google.com/",
    }
    advice = advise(reply.code, reply.text)
    assert advice is not None
    assert advice.topic is ReplyTopic.TOKEN_REFUSED
    assert advice.provider == GOOGLE
    assert "status 400" in advice.summary
    assert "scope https://mail.google.com/" in advice.summary
    assert "Reconnect the account" in advice.fix


def test_google_xoauth2_challenge_401_means_expired_or_revoked() -> None:
    reply = wire(_challenge({"status": "401", "schemes": "bearer mac", "scope": "x"}))
    advice = advise(reply.code, reply.text)
    assert advice is not None
    assert "expired" in advice.summary
    assert "https://mail.google.com/" in advice.fix  # a strange scope is not echoed


def test_an_ordinary_334_prompt_is_not_a_challenge() -> None:
    assert advise(334, "VXNlcm5hbWU6") is None  # "Username:" of AUTH LOGIN
    assert xoauth2_challenge("eyJub3QganNvbg") is None


def test_stored_server_failure_text_is_explained() -> None:
    text = (
        "auth: 535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is "
        "disabled for the Mailbox. — 535 Authentication failed"
    )
    advice = advise_stored(None, None, text)
    assert advice is not None
    assert advice.topic is ReplyTopic.SMTP_AUTH_DISABLED
    assert advise_stored(None, None, "connect: nothing listens on port 587 here") is None
    assert advise_stored(550, "5.7.30", "Basic authentication is not supported") is not None
