"""Read the bounce mailbox over IMAP (``domain.bounce_mailbox``): connect like SMTP does
(network guard, proxy, TLS trust), sign in with a password or XOAUTH2, ``EXAMINE`` the folder
(read-only) and fetch what arrived since the cursor.

The socket is opened on the event loop with the SMTP adapter's routing (so the guard and the
proxy are the same code); the IMAP conversation itself runs in a thread with the standard
library's ``imaplib`` over that socket, bounded by the command timeout. Only headers are
fetched first; a body is fetched (``BODY.PEEK[]``: nothing is marked read) only when the
headers say it may be a report (``domain.delivery_reports.might_be_report``).

Every failure is a :class:`MailboxFailure` that names the step (``connect``, ``tls``,
``login``, ``folder``, ``read``), says what happened and how to fix it, and never quotes a
password or token.
"""

from __future__ import annotations

import asyncio
import dataclasses
import imaplib
import re
import socket
import ssl
from datetime import datetime, timedelta

from visitmail.adapters.smtp import connect as smtp_connect
from visitmail.domain.bounce_mailbox import (
    FIRST_LOOK_DAYS,
    MAX_PER_POLL,
    BounceMailbox,
    MailboxCursor,
    MailboxFailure,
    MailboxStep,
)
from visitmail.domain.delivery_reports import MAX_REPORT_BYTES, might_be_report
from visitmail.domain.network_policy import NetworkPolicy
from visitmail.domain.smtp_errors import SmtpDnsFailed, SmtpFailure
from visitmail.domain.smtp_settings import Security, SmtpSecrets, SmtpSettings
from visitmail.services.bounce_mailbox_ports import FetchedMail, MailboxLogin, ReadBatch

_FETCH_CHUNK = 100
_HEADERS = "BODY.PEEK[HEADER.FIELDS (FROM SUBJECT CONTENT-TYPE X-FAILED-RECIPIENTS)]"
_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")


def _route_settings(mailbox: BounceMailbox, smtp: SmtpSettings) -> SmtpSettings:
    """The mail server's settings aimed at the IMAP host: its proxy, timeouts and trust
    (a private CA and client certificate; no pin: that names the SMTP server's certificate)."""
    return dataclasses.replace(
        smtp,
        host=mailbox.host,
        port=mailbox.port,
        security=mailbox.security,
        tls=dataclasses.replace(smtp.tls, pinned_sha256=None),
    )


async def open_mailbox_socket(
    mailbox: BounceMailbox, smtp: SmtpSettings, secrets: SmtpSecrets, policy: NetworkPolicy
) -> tuple[socket.socket, ssl.SSLContext | None, SmtpSettings]:
    """A connected socket to the IMAP server (guarded, through the proxy if there is one) and
    the TLS context to use on it. Raises :class:`MailboxFailure` (``connect`` / ``tls``)."""
    settings = _route_settings(mailbox, smtp)
    try:
        context = smtp_connect.tls_context_for(settings, secrets)
        route = await smtp_connect.resolve_route(settings, policy)
        sock = await smtp_connect.open_socket(settings, secrets, route)
    except SmtpFailure as e:
        step = MailboxStep.TLS if e.stage.value == "tls" else MailboxStep.CONNECT
        fix = e.fix or "Check the IMAP host and port (IMAPS is usually port 993)."
        if isinstance(e, SmtpDnsFailed):  # its fix names an SMTP host as the example
            fix = "Check the spelling of the IMAP host name (for example outlook.office365.com)."
        raise MailboxFailure(e.message, step=step, fix=fix) from e
    return sock, context, settings


class _ImapOverSocket(imaplib.IMAP4):
    """``imaplib.IMAP4`` on a socket that is already connected."""

    def __init__(self, sock: socket.socket, host: str, timeout: float) -> None:
        self._given = sock
        super().__init__(host, 0, timeout)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        self._given.setblocking(True)
        self._given.settimeout(timeout)
        return self._given


class _ImapTlsOverSocket(imaplib.IMAP4_SSL):
    """``imaplib.IMAP4_SSL`` (implicit TLS) on a socket that is already connected."""

    def __init__(
        self, sock: socket.socket, host: str, context: ssl.SSLContext, timeout: float
    ) -> None:
        self._given = sock
        super().__init__(host, 0, ssl_context=context, timeout=timeout)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        self._given.setblocking(True)
        self._given.settimeout(timeout)
        wrapped: socket.socket = self.ssl_context.wrap_socket(
            self._given, server_hostname=self.host
        )
        return wrapped


def _failure_text(exc: BaseException) -> str:
    text = str(exc.args[0] if exc.args else exc)
    if isinstance(exc.args[0] if exc.args else None, bytes):
        text = exc.args[0].decode("utf-8", errors="replace")
    return " ".join(text.split())[:300]


def _open(
    sock: socket.socket,
    host: str,
    security: Security,
    context: ssl.SSLContext | None,
    seconds: float,
) -> imaplib.IMAP4:
    try:
        if security is Security.TLS:
            assert context is not None
            return _ImapTlsOverSocket(sock, host, context, seconds)
        client = _ImapOverSocket(sock, host, seconds)
    except ssl.SSLCertVerificationError as e:
        sock.close()
        raise MailboxFailure(
            f"The certificate of {host} could not be verified ({e.verify_message}).",
            step=MailboxStep.TLS,
            fix="Use the provider's IMAP host name, or add its private CA on the mail server page.",
        ) from e
    except (ssl.SSLError, OSError, imaplib.IMAP4.error) as e:
        sock.close()
        raise MailboxFailure(
            f"{host} did not greet like an IMAP server ({_failure_text(e)}).",
            step=MailboxStep.CONNECT,
            fix="Check the port: IMAPS (implicit TLS) is 993, IMAP with STARTTLS is 143.",
        ) from e
    if security is Security.STARTTLS:
        if "STARTTLS" not in client.capabilities:
            client.shutdown()
            raise MailboxFailure(
                f"{host} does not offer STARTTLS.",
                step=MailboxStep.TLS,
                fix="Use port 993 with TLS; the password is never sent unencrypted.",
            )
        try:
            client.starttls(context)
        except (ssl.SSLError, OSError, imaplib.IMAP4.error) as e:
            client.shutdown()
            raise MailboxFailure(
                f"STARTTLS with {host} failed ({_failure_text(e)}).",
                step=MailboxStep.TLS,
                fix="Check the certificate of the IMAP server, or use port 993 with TLS.",
            ) from e
    return client


def _login(client: imaplib.IMAP4, login: MailboxLogin, host: str) -> None:
    try:
        if login.access_token is not None:
            blob = f"user={login.username}\x01auth=Bearer {login.access_token}\x01\x01".encode()
            client.authenticate("XOAUTH2", lambda _challenge: blob)
        else:
            client.login(login.username, login.password or "")
    except imaplib.IMAP4.error as e:
        text = _failure_text(e)
        for secret in (login.password, login.access_token):
            if secret:
                text = text.replace(secret, "[redacted]")
        fix = (
            "Check that IMAP is allowed for the mailbox and that the sign-in includes the "
            "IMAP permission (reconnect with Microsoft 365 / Google)."
            if login.access_token is not None
            else "Check the username and password; some providers need an app password or "
            "IMAP switched on for the mailbox."
        )
        raise MailboxFailure(
            f"{host} refused the sign-in as {login.username}: {text}",
            step=MailboxStep.LOGIN,
            fix=fix,
        ) from e


def _quoted(folder: str) -> str:
    return '"' + folder + '"'


def _uids(data: list[object]) -> list[int]:
    raw = data[0] if data and isinstance(data[0], bytes) else b""
    return sorted(int(x) for x in raw.split() if x.isdigit())


def _fetch_parts(data: list[object]) -> list[tuple[int, int, bytes]]:
    """``(uid, size, bytes)`` for each message of a FETCH answer."""
    parts: list[tuple[int, int, bytes]] = []
    for item in data:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], bytes):
            uid = _UID.search(item[0])
            size = _SIZE.search(item[0])
            body = item[1] if isinstance(item[1], bytes) else b""
            if uid is not None:
                parts.append((int(uid.group(1)), int(size.group(1)) if size else 0, body))
    return parts


def _select(client: imaplib.IMAP4, folder: str) -> tuple[int, int, int]:
    """``(uidvalidity, uidnext, exists)`` of the folder, opened read-only."""
    typ, data = client.select(_quoted(folder), readonly=True)
    if typ != "OK":
        said = _failure_text(imaplib.IMAP4.error(*data))
        raise MailboxFailure(
            f"The folder {folder} could not be opened ({said}).",
            step=MailboxStep.FOLDER,
            fix="Check the folder's name (INBOX is the inbox; names are case-sensitive).",
        )
    exists = int(data[0]) if data and isinstance(data[0], bytes) and data[0].isdigit() else 0
    validity = client.response("UIDVALIDITY")[1]
    uidnext = client.response("UIDNEXT")[1]
    uv = int(validity[0]) if validity and validity[0] else 0
    nx = int(uidnext[0]) if uidnext and uidnext[0] else 0
    return uv, nx, exists


def _read(
    client: imaplib.IMAP4, folder: str, cursor: MailboxCursor | None, now: datetime
) -> ReadBatch:
    uidvalidity, uidnext, exists = _select(client, folder)
    if cursor is None or cursor.uidvalidity != uidvalidity:
        since = (now - timedelta(days=FIRST_LOOK_DAYS)).strftime("%d-%b-%Y")
        typ, data = client.uid("SEARCH", "SINCE", since)
        after = 0
    else:
        typ, data = client.uid("SEARCH", "UID", f"{cursor.last_uid + 1}:*")
        after = cursor.last_uid
    if typ != "OK":
        raise MailboxFailure(
            "The folder could not be searched.",
            step=MailboxStep.READ,
            fix="Try again later; if it persists, check the folder on the mail server.",
        )
    # "n:*" always includes the newest message, even below n: keep only what is new.
    uids = [u for u in _uids(data) if u > after]
    batch = uids[:MAX_PER_POLL]
    candidates: list[int] = []
    for start in range(0, len(batch), _FETCH_CHUNK):
        chunk = ",".join(str(u) for u in batch[start : start + _FETCH_CHUNK])
        typ, data = client.uid("FETCH", chunk, f"(UID RFC822.SIZE {_HEADERS})")
        for uid, size, headers in _fetch_parts(data if typ == "OK" else []):
            if size <= MAX_REPORT_BYTES and might_be_report(headers):
                candidates.append(uid)
    mails: list[FetchedMail] = []
    for uid in candidates:
        typ, data = client.uid("FETCH", str(uid), "(UID BODY.PEEK[])")
        for found, _size, raw in _fetch_parts(data if typ == "OK" else []):
            if found == uid:
                mails.append(FetchedMail(uid, raw))
    if len(uids) > len(batch):
        last = batch[-1]  # more next time
    else:
        last = max([after, *batch, uidnext - 1 if uidnext else 0])
    return ReadBatch(MailboxCursor(uidvalidity, last), tuple(mails), len(batch), exists)


def read_mailbox(
    sock: socket.socket,
    *,
    host: str,
    security: Security,
    context: ssl.SSLContext | None,
    login: MailboxLogin,
    folder: str,
    cursor: MailboxCursor | None,
    now: datetime,
    seconds: float,
) -> ReadBatch:
    """One poll over ``sock`` (blocking: run it in a thread). See the module docstring."""
    client = _open(sock, host, security, context, seconds)
    try:
        _login(client, login, host)
        return _read(client, folder, cursor, now)
    except MailboxFailure:
        raise
    except (imaplib.IMAP4.error, OSError, ssl.SSLError) as e:
        raise MailboxFailure(
            f"Reading the mailbox at {host} failed ({_failure_text(e)}).",
            step=MailboxStep.READ,
            fix="Try again later; the next poll starts where this one stopped.",
        ) from e
    finally:
        try:
            client.logout()
        except (imaplib.IMAP4.error, OSError, ssl.SSLError):
            client.shutdown()


async def poll_mailbox(
    mailbox: BounceMailbox,
    smtp: SmtpSettings,
    secrets: SmtpSecrets,
    login: MailboxLogin,
    *,
    policy: NetworkPolicy,
    cursor: MailboxCursor | None,
    now: datetime,
) -> ReadBatch:
    """Open the connection on the loop, then read in a thread (bounded by the mail server's
    command timeout per operation)."""
    sock, context, settings = await open_mailbox_socket(mailbox, smtp, secrets, policy)
    try:
        return await asyncio.to_thread(
            read_mailbox,
            sock,
            host=mailbox.host,
            security=mailbox.security,
            context=context,
            login=login,
            folder=mailbox.folder,
            cursor=cursor,
            now=now,
            seconds=settings.timeouts.command,
        )
    except BaseException:
        sock.close()
        raise
