"""What a refusal is about (issue 10, items 1 and 2): replies that name the sender are the
account's problem wherever they come; only replies about the recipient's address itself may
suppress that address. Replies as real servers send them."""

from __future__ import annotations

import pytest

from visitmail.domain.smtp_replies import SmtpReply, names_the_sender, rejects_the_address

SENDER_REFUSALS = [
    # Postfix, reject_sender_login_mismatch, at RCPT TO
    (553, "5.7.1 <boss@example.org>: Sender address rejected: not owned by user alice@x.org"),
    # Microsoft 365 after the final dot, and its SMTP AUTH variant
    (554, "5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied"),
    (550, "5.7.60 SMTP; Client does not have permissions to send as this sender"),
    # Google Workspace / generic relays
    (553, "5.1.8 Sender address rejected: Domain not found"),
    (550, "5.1.7 Invalid address"),
    (550, "The from address does not match a verified Sender Identity."),
    (550, "Unauthorized sender address."),
    (451, "4.1.8 <boss@example.org>: Sender address rejected: Domain not found"),
]

ADDRESS_REFUSALS = [
    (550, "5.1.1 <nobody@example.net>: Recipient address rejected: User unknown"),
    (550, "5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"),
    (554, "5.1.2 Host not found"),
    (553, "5.1.3 Invalid address syntax"),
    (550, "5.2.1 The email account that you tried to reach is disabled."),
    (550, "No such user here"),  # no enhanced code
    (550, "<x@example.net>... User unknown"),
]

NOT_ABOUT_THE_ADDRESS = [
    (552, "5.3.4 Message size exceeds fixed limit"),
    (554, "5.7.1 Service unavailable; Client host blocked using zen.spamhaus.org"),
    (550, "5.7.1 Message rejected as spam"),
    (530, "5.7.0 Authentication required"),
    (554, "5.6.0 Message content rejected"),
    (550, "5.7.26 Unauthenticated email is not accepted (DMARC)"),
    (550, "5.4.1 Relay access denied"),
    (450, "4.1.1 <x@example.net>: Recipient address rejected: unverified address"),  # temporary
    (550, "Relaying denied"),
]


@pytest.mark.parametrize(("code", "text"), SENDER_REFUSALS)
def test_sender_refusals_name_the_sender_and_never_suppress(code: int, text: str) -> None:
    reply = SmtpReply(code, text)
    assert names_the_sender(reply)
    assert not rejects_the_address(reply)


@pytest.mark.parametrize(("code", "text"), ADDRESS_REFUSALS)
def test_refusals_of_the_address_itself_suppress(code: int, text: str) -> None:
    reply = SmtpReply(code, text)
    assert rejects_the_address(reply)
    assert not names_the_sender(reply)


@pytest.mark.parametrize(("code", "text"), NOT_ABOUT_THE_ADDRESS)
def test_policy_size_auth_content_and_temporary_refusals_never_suppress(
    code: int, text: str
) -> None:
    reply = SmtpReply(code, text)
    assert not rejects_the_address(reply)
    assert not names_the_sender(reply)


def test_an_accepted_reply_is_about_nothing() -> None:
    assert not names_the_sender(SmtpReply(250, "2.1.0 Sender OK"))
    assert not rejects_the_address(SmtpReply(250, "2.1.5 Recipient OK"))
