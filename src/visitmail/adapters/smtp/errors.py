"""Translate aiosmtplib / ssl / socket / python-socks exceptions into domain errors, once.

:func:`translate` looks at the exception *and its causes* (aiosmtplib wraps ``OSError`` and
``ssl.SSLError`` in ``SMTPConnectError``) and returns an :class:`SmtpFailure` whose message
says what happened in plain words and whose ``fix`` says what to change. Texts quote the
host, port and the server's reply, never a secret: library exception texts are only quoted
where they cannot hold one (TLS reasons, proxy replies, server replies).
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

import aiosmtplib
from python_socks import ProxyConnectionError, ProxyError, ProxyTimeoutError

from visitmail.domain.diagnosis import StepName
from visitmail.domain.reply_advice import SENDER_FIX, ReplyTopic, advise, xoauth2_challenge
from visitmail.domain.smtp_errors import (
    Detail,
    SmtpAuthFailed,
    SmtpCertificateRejected,
    SmtpConnectFailed,
    SmtpDisconnected,
    SmtpDnsFailed,
    SmtpFailure,
    SmtpProxyFailed,
    SmtpRejected,
    SmtpStartTlsUnavailable,
    SmtpTimedOut,
    SmtpTlsFailed,
)
from visitmail.domain.smtp_replies import SmtpReply, names_the_sender
from visitmail.domain.smtp_settings import ProxyKind, Security, SmtpSettings

E = TypeVar("E", bound=BaseException)

_PLAIN_SPOKEN = {
    "WRONG_VERSION_NUMBER",
    "RECORD_LAYER_FAILURE",
    "PACKET_LENGTH_TOO_LONG",
    "HTTP_REQUEST",
    "UNKNOWN_PROTOCOL",
}
_OLD_TLS = {"UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION", "NO_PROTOCOLS_AVAILABLE"}
_SOCKS5_REPLIES = {
    1: "a general failure",
    2: "its rules do not allow this connection",
    3: "the network is unreachable from the proxy",
    4: "the host is unreachable from the proxy",
    5: "the connection was refused",
    6: "the connection timed out",
    7: "the command is not supported",
    8: "the address type is not supported",
}
CERTIFICATE_FIX = (
    "If you trust this server, add its CA certificate (PEM) as a custom CA, or pin the "
    "certificate's SHA-256 fingerprint (shown in the details, check it with the provider). "
    "Certificate verification cannot be switched off."
)


@dataclass(frozen=True, slots=True)
class Target:
    """Where a connection goes, for messages: the SMTP server and the proxy, if any."""

    host: str
    port: int
    security: Security
    proxy: str | None  # "HTTP proxy 203.0.113.5:3128", or None for a direct connection
    proxy_kind: ProxyKind
    connect_timeout: float
    command_timeout: float

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"


def target_of(settings: SmtpSettings) -> Target:
    return Target(
        host=settings.host,
        port=settings.port,
        security=settings.security,
        proxy=proxy_label(settings),
        proxy_kind=settings.proxy.kind,
        connect_timeout=settings.timeouts.connect,
        command_timeout=settings.timeouts.command,
    )


def proxy_label(settings: SmtpSettings) -> str | None:
    """``"SOCKS5 proxy host:port"`` or ``None`` without a proxy (never the credentials)."""
    proxy = settings.proxy
    if not proxy.enabled:
        return None
    kind = {ProxyKind.HTTP: "HTTP", ProxyKind.SOCKS5: "SOCKS5", ProxyKind.SOCKS4: "SOCKS4"}
    return f"{kind[proxy.kind]} proxy {proxy.host}:{proxy.port}"


def find_cause(exc: BaseException, kind: type[E]) -> E | None:
    """The first exception of ``kind`` in ``exc``'s cause / context chain (``exc`` first)."""
    for item in _chain(exc):
        if isinstance(item, kind):
            return item
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def translate(exc: BaseException, *, stage: StepName, target: Target) -> SmtpFailure:
    """The domain error for ``exc`` raised during ``stage``. Never raises."""
    if isinstance(exc, SmtpFailure):
        return exc
    handlers = (
        _proxy,
        _dns,
        _certificate,
        _tls,
        _smtp_reply,
        _timeout,
        _disconnected,
        _os_error,
    )
    for handler in handlers:
        failure = handler(exc, stage, target)
        if failure is not None:
            return failure
    return SmtpFailure(
        f"The {stage.value} step failed unexpectedly ({type(exc).__name__}).",
        stage=stage,
        fix="Run the test again; if it keeps failing, contact the operator with the time.",
    )


def timeout_failure(stage: StepName, target: Target, seconds: float) -> SmtpTimedOut:
    """The message for a step cut short by a time limit of ``seconds``."""
    if stage is StepName.CONNECT:
        via = f" through the {target.proxy}" if target.proxy else ""
        return SmtpTimedOut(
            f"No answer from {target.server}{via} within {seconds:g} s: the connection "
            "attempt got no reply at all, so the address is probably blackholed or a "
            "firewall silently drops the traffic.",
            stage=stage,
            fix=f"Check the host name and port. Ask your network administrator whether "
            f"outgoing connections to port {target.port} are allowed (many cloud providers "
            "block port 25); try port 587 or 465.",
        )
    if stage is StepName.GREETING and target.security is not Security.TLS:
        return SmtpTimedOut(
            f"Connected to {target.server}, but the server sent no greeting within "
            f"{seconds:g} s. A server that waits silently usually expects implicit TLS.",
            stage=stage,
            fix=f"Choose `tls` (implicit TLS) for port {target.port}, or use port 587 with "
            "STARTTLS.",
        )
    if stage is StepName.TLS:
        return SmtpTimedOut(
            f"The TLS handshake with {target.server} did not finish within {seconds:g} s.",
            stage=stage,
            fix="Check that the port speaks TLS: 465 for `tls`; 587 for `starttls`.",
        )
    return SmtpTimedOut(
        f"The server did not answer the {stage.value} step within {seconds:g} s.",
        stage=stage,
        fix="Try again later; if it persists, raise the command timeout or ask the provider.",
    )


def speaks_plain(failure: SmtpFailure) -> bool:
    """Whether a failed TLS handshake was answered in plain text (an SMTP greeting)."""
    return failure.details.get("tls_error") in _PLAIN_SPOKEN


def starttls_unavailable(target: Target) -> SmtpStartTlsUnavailable:
    """``starttls`` chosen, but the EHLO reply lists no STARTTLS: the port speaks plain
    SMTP. Ends with the two ways forward, so the admin is not sent round in circles."""
    return SmtpStartTlsUnavailable(
        f"Port {target.port} speaks plain SMTP without STARTTLS: the server's EHLO reply "
        "does not offer STARTTLS, so the connection cannot be encrypted on this port. "
        "visitmail closed it before sending anything else (the password was not sent).",
        stage=StepName.TLS,
        fix="Two ways forward: (1) use an encrypted port if the server has one, 465 with "
        "`tls` or 587 with `starttls` (auto-detect tries them); or (2) choose `none` for "
        f"port {target.port}: mail and password then cross the network unencrypted, so "
        "only do this on a trusted network, and the operator must allow plaintext login "
        "(VISITMAIL_ALLOW_PLAINTEXT_AUTH=true) if a username is set.",
    )


def _proxy(exc: BaseException, stage: StepName, target: Target) -> SmtpFailure | None:
    label = target.proxy or "proxy"
    if find_cause(exc, ProxyTimeoutError) is not None:
        return SmtpTimedOut(
            f"The {label} did not set up the connection to {target.server} in time.",
            stage=StepName.CONNECT,
            fix="Check that the proxy is running and can reach the SMTP server.",
            details={"proxy": label},
        )
    if (conn := find_cause(exc, ProxyConnectionError)) is not None:
        reason = "refused the connection" if conn.errno == 111 else "could not be reached"
        return SmtpProxyFailed(
            f"The {label} {reason}, so the SMTP server was never contacted.",
            stage=StepName.CONNECT,
            fix="Check the proxy host and port and that the proxy is running.",
            details={"proxy": label},
        )
    if (err := find_cause(exc, ProxyError)) is None:
        return None
    return _proxy_reply(err, label, target)


def _proxy_reply(err: ProxyError, label: str, target: Target) -> SmtpFailure:
    text = str(err)
    code = err.error_code
    details: dict[str, str | int | list[str]] = {"proxy": label, "proxy_reply": text}
    lowered = text.lower()
    if code in (401, 407) or "authentication" in lowered:
        return SmtpProxyFailed(
            f"The {label} refused the proxy username or password ({text}).",
            stage=StepName.CONNECT,
            fix="Check the proxy username and password.",
            details=details,
        )
    socks5 = target.proxy_kind is ProxyKind.SOCKS5
    if code == 403 or (socks5 and code == 2):
        return SmtpProxyFailed(
            f"The {label} does not allow connections to {target.server} ({text}).",
            stage=StepName.CONNECT,
            fix=f"Ask the proxy's administrator to allow connections to port {target.port}.",
            details=details,
        )
    reason = _SOCKS5_REPLIES.get(code, text) if socks5 and isinstance(code, int) else text
    return SmtpProxyFailed(
        f"The {label} could not connect to {target.server}: {reason}.",
        stage=StepName.CONNECT,
        fix="Check the SMTP host and port, and that the proxy can reach that server.",
        details=details,
    )


def _dns(exc: BaseException, stage: StepName, target: Target) -> SmtpFailure | None:
    if find_cause(exc, socket.gaierror) is None:
        return None
    return SmtpDnsFailed(
        f"The host name {target.host} could not be resolved.",
        stage=StepName.RESOLVE,
        fix="Check the spelling of the host name; it must be the provider's SMTP server "
        "(for example smtp.example.com), not a web address.",
    )


def _certificate(exc: BaseException, stage: StepName, target: Target) -> SmtpFailure | None:
    err = find_cause(exc, ssl.SSLCertVerificationError)
    if err is None:
        return None
    code = err.verify_code
    why = {
        9: "is not valid yet",
        10: "has expired",
        18: "is self-signed",
        19: "was issued by a self-signed CA that is not trusted",
        20: "was issued by a certificate authority that is not trusted",
        21: "was issued by a certificate authority that is not trusted",
        62: f"was not issued for the name {target.host}",
        64: f"was not issued for the address {target.host}",
    }.get(code, f"could not be verified ({err.verify_message})")
    fix = CERTIFICATE_FIX
    if code in (62, 64):
        fix = (
            "Use the host name the certificate was issued for (often the provider's "
            "documented SMTP host), or pin the certificate's fingerprint."
        )
    elif code in (9, 10):
        fix = "Ask the server's administrator to renew the certificate."
    return SmtpCertificateRejected(
        f"The server's certificate {why}, so the connection was refused.",
        stage=StepName.TLS,
        fix=fix,
        details={"verify_error": str(err.verify_message)},
    )


def _tls(exc: BaseException, stage: StepName, target: Target) -> SmtpFailure | None:
    err = find_cause(exc, ssl.SSLError)
    if err is None:
        return None
    reason = str(err.reason or "")
    if reason in _PLAIN_SPOKEN and target.security is Security.TLS:
        other = "port 465" if target.port != 465 else "a port that speaks implicit TLS"
        return SmtpTlsFailed(
            f"The server speaks plain SMTP on port {target.port} but `tls` was chosen: "
            f"choose STARTTLS, or {other}.",
            stage=StepName.TLS,
            fix=f"Set security to `starttls` for port {target.port}, or use `tls` with port 465.",
            details={"tls_error": reason},
        )
    if reason in _OLD_TLS:
        return SmtpTlsFailed(
            "The server only offers a TLS version older than 1.2, which visitmail refuses.",
            stage=StepName.TLS,
            fix="Ask the provider to enable TLS 1.2 or 1.3 on the server.",
            details={"tls_error": reason},
        )
    return SmtpTlsFailed(
        f"The TLS handshake with {target.server} failed ({reason or type(err).__name__}).",
        stage=StepName.TLS,
        fix="Check the port and security: 465 with `tls`, 587 with `starttls`.",
        details={"tls_error": reason or type(err).__name__},
    )


def _smtp_reply(exc: BaseException, stage: StepName, target: Target) -> SmtpFailure | None:
    if not isinstance(exc, aiosmtplib.SMTPResponseException):
        return None
    code, text = exc.code, exc.message
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError) or stage is StepName.AUTH:
        return auth_rejected(code, text)
    if isinstance(exc, aiosmtplib.SMTPSenderRefused) or stage is StepName.MAIL_FROM:
        return sender_rejected(code, text)
    if names_the_sender(SmtpReply(code, text)):
        # Postfix refuses a sender at RCPT TO, Microsoft 365 after the message: the
        # account's problem, explained as such at the step where it came.
        return sender_rejected(code, text, stage=stage)
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused) or stage is StepName.RCPT_TO:
        stage = StepName.RCPT_TO
        fix = (
            "Check the recipient address; some servers only relay for authenticated "
            "users, so set a username and password if none is set."
        )
        message = f"The server refused the test recipient: {code} {text}"
    else:
        if isinstance(exc, aiosmtplib.SMTPConnectResponseError):
            stage = StepName.GREETING
        fix = (
            "Read the server's reply; if it names a policy (IP block list, rate limit), "
            "contact the provider."
        )
        message = f"The server answered the {stage.value} step with an error: {code} {text}"
    advice = advise(code, text)
    if advice is not None:
        message = f"{message.rstrip('.')}. {advice.summary}"
        fix = advice.fix
    return SmtpRejected(message, stage=stage, fix=fix, reply_code=code, reply_text=text)


_OAUTH_FIX = (
    "Check that the SMTP username is the mailbox that signed in (or that the app may send as "
    "it), that SMTP AUTH is enabled for the mailbox, and reconnect the account if the token "
    "was revoked."
)


def auth_rejected(
    code: int, text: str, *, challenge: str | None = None, oauth: bool = False
) -> SmtpAuthFailed:
    """The failure for a rejected AUTH (535 and friends); a reply the explainer knows
    (:func:`visitmail.domain.reply_advice.advise`) says what it means and its fix.

    ``challenge``: the text of the ``334`` an XOAUTH2 attempt got before this final reply
    (Google's base64 JSON error): it says more than the final ``535 5.7.8``, so its
    explanation wins, and its status and scope go into the details. ``oauth``: the login was
    XOAUTH2 with an access token, so a reply nobody explains is about the token, not a
    password."""
    if oauth:
        message = f"{code} The server refused the OAuth2 login for the mailbox."
        fix = _OAUTH_FIX
    else:
        message = f"{code} Authentication failed: check the username and password."
        fix = "Check the username and password (re-enter the password)."
    details: dict[str, Detail] = {}
    advice = advise(334, challenge) if challenge else None
    if advice is not None and challenge is not None:
        decoded = xoauth2_challenge(challenge) or {}
        details = {f"oauth_{k}": decoded[k] for k in ("status", "scope") if k in decoded}
    else:
        advice = advise(code, text)
    if advice is not None:
        message = f"{code} Authentication failed: {advice.summary}"
        fix = advice.fix
    return SmtpAuthFailed(
        message,
        stage=StepName.AUTH,
        fix=fix,
        reply_code=code,
        reply_text=text,
        details=details,
    )


def sender_rejected(code: int, text: str, *, stage: StepName = StepName.MAIL_FROM) -> SmtpRejected:
    """The failure for a refused sender: usually "this account may not send as that".
    ``stage`` is where the refusal came (MAIL FROM, or RCPT TO / after the message for
    servers that decide later); the explanation is about the sender either way."""
    later = {
        StepName.MAIL_FROM: "",
        StepName.RCPT_TO: " in its answer to RCPT TO",
        StepName.SEND: " after the message",
    }.get(stage, f" at the {stage.value} step")
    advice = advise(code, text)
    if advice is not None and advice.topic is not ReplyTopic.SENDER_NOT_ALLOWED:
        # Refused at MAIL FROM for another reason (530 not logged in, 5.4.5 daily
        # limit, 5.7.708 IP refused, 4.3.2 too many connections): say that instead.
        return SmtpRejected(
            f"The server refused MAIL FROM{later} ({code}): {advice.summary}",
            stage=stage,
            fix=advice.fix,
            reply_code=code,
            reply_text=text,
        )
    if 500 <= code < 600:
        message = (
            f"The server refused the sender address{later} ({code}): this account is not "
            "allowed to send as this sender."
        )
        fix = advice.fix if advice is not None else SENDER_FIX
    else:
        message = f"The server temporarily refused the sender address{later} ({code})."
        fix = "Try again later; if it persists, contact the provider."
    return SmtpRejected(message, stage=stage, fix=fix, reply_code=code, reply_text=text)


def _timeout(exc: BaseException, stage: StepName, target: Target) -> SmtpFailure | None:
    if find_cause(exc, TimeoutError) is None:
        return None
    seconds = target.connect_timeout if stage is StepName.CONNECT else target.command_timeout
    return timeout_failure(stage, target, seconds)


def _disconnected(exc: BaseException, stage: StepName, target: Target) -> SmtpFailure | None:
    if not isinstance(exc, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPConnectError):
        return None
    if find_cause(exc, ConnectionRefusedError) is not None:
        return None
    hint = ""
    if stage in (StepName.GREETING, StepName.EHLO) and target.security is not Security.TLS:
        hint = " A server that hangs up at once often expects implicit TLS (`tls`, port 465)."
    return SmtpDisconnected(
        f"The server closed the connection during the {stage.value} step.{hint}",
        stage=stage,
        fix="Check the port and security; if they are right, the server may be refusing "
        "this client's address (ask the provider).",
    )


def _os_error(exc: BaseException, stage: StepName, target: Target) -> SmtpFailure | None:
    err = find_cause(exc, OSError)
    if err is None:
        return None
    if isinstance(err, ConnectionRefusedError):
        return SmtpConnectFailed(
            f"{target.server} refused the connection: nothing accepts connections on port "
            f"{target.port} there.",
            stage=StepName.CONNECT,
            fix="Check the port (465 for `tls`, 587 for `starttls`, 25 server-to-server) "
            "and that no firewall rejects the connection.",
        )
    if isinstance(err, ConnectionResetError | BrokenPipeError):
        return SmtpDisconnected(
            f"The connection to {target.server} was reset during the {stage.value} step.",
            stage=stage,
            fix="Check the port and security; a firewall or the server may be resetting it.",
        )
    return SmtpConnectFailed(
        f"Could not connect to {target.server}: {err.strerror or type(err).__name__}.",
        stage=StepName.CONNECT if stage in (StepName.RESOLVE, StepName.CONNECT) else stage,
        fix="Check the host, the port and this network's outgoing firewall.",
    )
