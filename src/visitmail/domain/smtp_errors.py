"""What went wrong talking to an SMTP server (or the proxy in front of it), as data.

The SMTP adapter translates library exceptions (aiosmtplib, ssl, socket, python-socks) into
these once, with ``raise ... from``. Each carries the ``stage`` (the connection-test step)
where it happened, the server's reply where there is one, a user-facing ``message`` (what
happened) and a concrete ``fix``. Deciding *temporary or permanent* is not done here: that
is the retry policy's job, from ``reply_code`` / ``enhanced_status`` and the class.

Messages never contain a secret (password, proxy password, key), not even its length.
"""

from __future__ import annotations

from collections.abc import Mapping

from visitmail.domain.diagnosis import StepName
from visitmail.domain.errors import VisitmailError
from visitmail.domain.smtp_replies import SmtpReply

Detail = str | int | list[str]


class SmtpFailure(VisitmailError):
    """Base of every SMTP conversation failure. ``stage`` names the step it failed at.
    ``needs_person``: retrying cannot help until someone acts (an OAuth sign-in was revoked,
    a fresh token was refused too), so the organization's queue pauses at once."""

    code = "smtp_failure"

    def __init__(
        self,
        message: str,
        *,
        stage: StepName,
        fix: str | None = None,
        reply_code: int | None = None,
        reply_text: str | None = None,
        details: Mapping[str, Detail] | None = None,
        code: str | None = None,
        needs_person: bool = False,
    ) -> None:
        super().__init__(message, code=code)
        self.stage = stage
        self.needs_person = needs_person
        self.fix = fix
        self.reply_code = reply_code
        self.reply_text = reply_text
        self.details: dict[str, Detail] = dict(details or {})

    @property
    def reply(self) -> SmtpReply | None:
        """The server's reply, for :func:`visitmail.domain.smtp_replies.classify`."""
        if self.reply_code is None:
            return None
        return SmtpReply(self.reply_code, self.reply_text or "")

    @property
    def enhanced_status(self) -> str | None:
        """The RFC 3463 status at the start of the reply text (``5.7.8``), if any."""
        reply = self.reply
        return reply.enhanced_status if reply else None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(stage={self.stage.value!r}, code={self.code!r}, "
            f"reply_code={self.reply_code!r}, message={self.message!r})"
        )


class SmtpAddressRefused(SmtpFailure):
    """The host or proxy resolves to an address the operator's network policy forbids."""

    code = "smtp_address_refused"


class SmtpDnsFailed(SmtpFailure):
    """The host name (or the proxy's) does not resolve."""

    code = "smtp_dns_failed"


class SmtpConnectFailed(SmtpFailure):
    """No TCP connection: refused, unreachable network, reset."""

    code = "smtp_connect_failed"


class SmtpTimedOut(SmtpFailure):
    """No answer within a time limit (connect, a command, or the whole test)."""

    code = "smtp_timeout"


class SmtpProxyFailed(SmtpFailure):
    """The proxy refused us, rejected its credentials, or could not reach the SMTP host."""

    code = "smtp_proxy_failed"


class SmtpTlsFailed(SmtpFailure):
    """The TLS handshake failed, or the TLS settings (CA, client certificate) are unusable."""

    code = "smtp_tls_failed"


class SmtpCertificateRejected(SmtpTlsFailed):
    """The server's certificate is not trusted: unknown CA, self-signed, expired, wrong
    host name, or it does not match the pinned fingerprint."""

    code = "smtp_certificate_rejected"


class SmtpStartTlsUnavailable(SmtpTlsFailed):
    """``starttls`` was chosen but the server does not offer STARTTLS: nothing more is sent."""

    code = "smtp_starttls_unavailable"


class SmtpAuthFailed(SmtpFailure):
    """Authentication did not succeed (rejected credentials, no common mechanism)."""

    code = "smtp_auth_failed"


class SmtpPlaintextAuthRefused(SmtpAuthFailed):
    """visitmail refused to send a password over an unencrypted connection."""

    code = "smtp_plaintext_auth_refused"


class SmtpRejected(SmtpFailure):
    """The server answered a command (greeting, EHLO, MAIL FROM, RCPT TO, DATA) with an
    error reply; ``reply_code`` and ``reply_text`` hold it."""

    code = "smtp_rejected"


class SmtpDisconnected(SmtpFailure):
    """The server (or the network) closed the connection in the middle of the dialogue."""

    code = "smtp_disconnected"
