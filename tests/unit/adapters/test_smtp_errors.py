"""Translation of library exceptions into domain errors with the right step and fix."""

from __future__ import annotations

import socket
import ssl

import aiosmtplib
import pytest
from python_socks import ProxyConnectionError, ProxyError, ProxyTimeoutError

from visitmail.adapters.smtp.connect import choose_mechanism
from visitmail.adapters.smtp.errors import Target, auth_rejected, translate
from visitmail.domain.diagnosis import StepName
from visitmail.domain.smtp_errors import (
    SmtpAuthFailed,
    SmtpCertificateRejected,
    SmtpConnectFailed,
    SmtpDnsFailed,
    SmtpProxyFailed,
    SmtpRejected,
    SmtpTimedOut,
    SmtpTlsFailed,
)
from visitmail.domain.smtp_settings import AuthMethod, ProxyKind, Security


def target(
    security: Security = Security.TLS, port: int = 587, proxy: ProxyKind = ProxyKind.NONE
) -> Target:
    label = {
        ProxyKind.NONE: None,
        ProxyKind.HTTP: "HTTP proxy 198.51.100.7:3128",
        ProxyKind.SOCKS5: "SOCKS5 proxy 198.51.100.7:1080",
        ProxyKind.SOCKS4: "SOCKS4 proxy 198.51.100.7:1080",
    }[proxy]
    return Target("smtp.example.com", port, security, label, proxy, 10.0, 30.0)


def wrapped(exc: BaseException) -> aiosmtplib.SMTPConnectError:
    """As aiosmtplib raises it: SMTPConnectError from the OSError."""
    try:
        try:
            raise exc
        except OSError as e:
            raise aiosmtplib.SMTPConnectError("Error connecting") from e
    except aiosmtplib.SMTPConnectError as outer:
        return outer


def ssl_error(reason: str) -> ssl.SSLError:
    err = ssl.SSLError(1, f"[SSL: {reason}] {reason.lower()}")
    err.reason = reason
    return err


def verify_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    err = ssl.SSLCertVerificationError(1, message)
    err.verify_code = code
    err.verify_message = message
    return err


def test_wrong_version_number_on_implicit_tls_names_starttls_and_465() -> None:
    failure = translate(
        wrapped(ssl_error("WRONG_VERSION_NUMBER")), stage=StepName.GREETING, target=target()
    )
    assert isinstance(failure, SmtpTlsFailed)
    assert failure.stage is StepName.TLS
    assert failure.message == (
        "The server speaks plain SMTP on port 587 but `tls` was chosen: "
        "choose STARTTLS, or port 465."
    )


@pytest.mark.parametrize(
    ("code", "message", "words"),
    [
        (18, "self-signed certificate", "is self-signed"),
        (20, "unable to get local issuer certificate", "not trusted"),
        (10, "certificate has expired", "has expired"),
        (62, "Hostname mismatch", "not issued for the name smtp.example.com"),
    ],
)
def test_certificate_failures_explain_and_offer_ca_or_pin(
    code: int, message: str, words: str
) -> None:
    failure = translate(wrapped(verify_error(code, message)), stage=StepName.TLS, target=target())
    assert isinstance(failure, SmtpCertificateRejected)
    assert failure.stage is StepName.TLS
    assert words in failure.message
    assert failure.fix


def test_untrusted_ca_fix_offers_custom_ca_and_pin() -> None:
    failure = translate(
        wrapped(verify_error(20, "unable to get local issuer certificate")),
        stage=StepName.TLS,
        target=target(),
    )
    assert "custom CA" in (failure.fix or "")
    assert "pin" in (failure.fix or "")


def test_old_tls_only_server() -> None:
    failure = translate(
        wrapped(ssl_error("UNSUPPORTED_PROTOCOL")), stage=StepName.TLS, target=target()
    )
    assert "older than 1.2" in failure.message


def test_connection_refused_means_wrong_port_or_firewall() -> None:
    failure = translate(
        ConnectionRefusedError(111, "refused"), stage=StepName.CONNECT, target=target()
    )
    assert isinstance(failure, SmtpConnectFailed)
    assert "refused the connection" in failure.message
    assert "port" in (failure.fix or "")


def test_dns_failure() -> None:
    failure = translate(
        socket.gaierror(-2, "Name or service not known"), stage=StepName.CONNECT, target=target()
    )
    assert isinstance(failure, SmtpDnsFailed)
    assert failure.stage is StepName.RESOLVE


def test_connect_timeout_says_blackholed() -> None:
    failure = translate(TimeoutError(), stage=StepName.CONNECT, target=target())
    assert isinstance(failure, SmtpTimedOut)
    assert "blackholed" in failure.message


@pytest.mark.parametrize(
    ("exc", "kind", "words"),
    [
        (
            ProxyConnectionError(111, "Could not connect to proxy"),
            ProxyKind.HTTP,
            "HTTP proxy 198.51.100.7:3128 refused the connection",
        ),
        (
            ProxyError("407 Proxy Authentication Required", error_code=407),
            ProxyKind.HTTP,
            "refused the proxy username or password",
        ),
        (
            ProxyError("Username and password authentication failure"),
            ProxyKind.SOCKS5,
            "refused the proxy username or password",
        ),
        (
            ProxyError("Connection refused", error_code=5),
            ProxyKind.SOCKS5,
            "could not connect to smtp.example.com:587: the connection was refused",
        ),
        (
            ProxyError("Host unreachable", error_code=4),
            ProxyKind.SOCKS5,
            "the host is unreachable from the proxy",
        ),
        (
            ProxyError("502 Bad Gateway", error_code=502),
            ProxyKind.HTTP,
            "could not connect to smtp.example.com:587: 502 Bad Gateway",
        ),
    ],
)
def test_proxy_failures_name_the_proxy_at_connect(
    exc: BaseException, kind: ProxyKind, words: str
) -> None:
    failure = translate(exc, stage=StepName.CONNECT, target=target(proxy=kind))
    assert isinstance(failure, SmtpProxyFailed)
    assert failure.stage is StepName.CONNECT
    assert words in failure.message
    assert "proxy" in failure.details


def test_proxy_timeout() -> None:
    failure = translate(
        ProxyTimeoutError("timed out"),
        stage=StepName.CONNECT,
        target=target(proxy=ProxyKind.SOCKS5),
    )
    assert isinstance(failure, SmtpTimedOut)
    assert "SOCKS5 proxy" in failure.message


def test_535_is_check_username_and_password() -> None:
    exc = aiosmtplib.SMTPAuthenticationError(535, "5.7.8 Authentication credentials invalid")
    failure = translate(exc, stage=StepName.AUTH, target=target())
    assert isinstance(failure, SmtpAuthFailed)
    assert failure.message == "535 Authentication failed: check the username and password."
    assert failure.reply_code == 535
    assert failure.enhanced_status == "5.7.8"


def test_534_asks_for_an_app_password() -> None:
    exc = aiosmtplib.SMTPAuthenticationError(534, "5.7.9 Application-specific password required")
    failure = translate(exc, stage=StepName.AUTH, target=target())
    assert "app password" in (failure.fix or "")


def test_sender_refused_is_the_sender_not_allowed_trap() -> None:
    exc = aiosmtplib.SMTPSenderRefused(553, "5.7.1 Sender not owned by user", "a@example.org")
    failure = translate(exc, stage=StepName.MAIL_FROM, target=target())
    assert isinstance(failure, SmtpRejected)
    assert failure.stage is StepName.MAIL_FROM
    assert "not allowed to send as this sender" in failure.message
    assert "verify" in (failure.fix or "")


def test_recipient_refused() -> None:
    exc = aiosmtplib.SMTPRecipientRefused(550, "5.1.1 No such user", "x@example.org")
    failure = translate(exc, stage=StepName.RCPT_TO, target=target())
    assert failure.stage is StepName.RCPT_TO
    assert failure.reply_code == 550


def test_greeting_timeout_without_tls_suggests_implicit_tls() -> None:
    exc = aiosmtplib.SMTPConnectTimeoutError("Timed out waiting for server ready message")
    failure = translate(exc, stage=StepName.GREETING, target=target(Security.STARTTLS, 465))
    assert "implicit TLS" in failure.message


@pytest.mark.parametrize(
    ("method", "offered", "expected"),
    [
        (AuthMethod.AUTO, ["login", "plain"], "plain"),
        (AuthMethod.AUTO, ["login", "plain", "cram-md5"], "cram-md5"),
        (AuthMethod.AUTO, ["login"], "login"),
        (AuthMethod.AUTO, ["xoauth2"], None),
        (AuthMethod.LOGIN, ["login", "plain"], "login"),
        (AuthMethod.CRAM_MD5, ["login", "plain"], None),
    ],
)
def test_choose_mechanism(method: AuthMethod, offered: list[str], expected: str | None) -> None:
    assert choose_mechanism(method, offered) == expected


def test_microsoft_basic_auth_off_says_switch_to_oauth() -> None:
    exc = aiosmtplib.SMTPAuthenticationError(
        550, "5.7.30 Basic authentication is not supported for Client Submission."
    )
    failure = translate(exc, stage=StepName.AUTH, target=target())
    assert isinstance(failure, SmtpAuthFailed)
    assert failure.message.startswith("550 Authentication failed: Microsoft 365 no longer")
    assert "OAuth2" in (failure.fix or "")


def test_send_as_denied_after_the_data_is_the_sender_problem() -> None:
    text = (
        "5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; "
        "Failed to process message due to a permanent exception with message "
        "[BeginDiagnosticData]Cannot submit message."
    )
    failure = translate(aiosmtplib.SMTPDataError(554, text), stage=StepName.SEND, target=target())
    assert isinstance(failure, SmtpRejected)
    assert failure.stage is StepName.SEND
    assert "not allowed to send as this sender" in failure.message
    assert "Add-RecipientPermission" in (failure.fix or "")


def test_a_refusal_at_mail_from_for_another_reason_is_not_called_a_sender_problem() -> None:
    exc = aiosmtplib.SMTPSenderRefused(
        432, "4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded", "a@example.org"
    )
    failure = translate(exc, stage=StepName.MAIL_FROM, target=target())
    assert "3 concurrent connections" in failure.message
    assert "to 3 or less" in (failure.fix or "")


def test_an_xoauth2_challenge_explains_the_final_535() -> None:
    challenge = "eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29vZ2xlLmNvbS8ifQ=="
    final = "5.7.8 Username and Password not accepted. For more information, go to\n5.7.8 x"
    failure = auth_rejected(535, final, challenge=challenge)
    assert "OAuth2 access token" in failure.message
    assert "https://mail.google.com/" in (failure.fix or "")
    assert failure.details == {"oauth_status": "400", "oauth_scope": "https://mail.google.com/"}
    plain = auth_rejected(535, final)  # without the challenge: Google's password advice
    assert "app password" in (plain.fix or "")
