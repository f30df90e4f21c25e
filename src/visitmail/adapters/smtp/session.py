"""The sending half of an SMTP connection, with ESMTP PIPELINING (RFC 2920).

aiosmtplib opens the connection (proxy, TLS, STARTTLS, AUTH: see ``connect.py``); it reads
exactly one reply per command it writes, so it cannot pipeline. Once the connection is
ready, :meth:`SmtpSession.adopt` takes its transport over with a reader that keeps every
complete reply in order. Then one transaction costs two round trips where the server
offers PIPELINING (MAIL + RCPTs + DATA together, then the body) instead of 3 + recipients.

A steady stream costs one round trip per message: when the caller already knows the next
message for this connection (``then=``), its envelope (RSET, MAIL, RCPTs, DATA) follows
the body's final ``.`` in the same write, as RFC 2920 §3.1 allows (the message content may
start a group, DATA ends it). The replies still arrive in order and are matched exactly:
first the body's final reply, then the next envelope's. Those are kept on the session
("ahead") and used by the next :meth:`SmtpSession.transaction` for that envelope.

The unknown outcome is explicit: if the connection drops or times out after the body's
final ``.`` was written, :class:`LostAfterData` is raised, never a plain failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections import deque
from dataclasses import dataclass, field

import aiosmtplib

from visitmail.domain.smtp_replies import SmtpReply

_BARE_LF = re.compile(rb"(?<!\r)\n")
_BARE_CR = re.compile(rb"\r(?!\n)")
_LEADING_DOT = re.compile(rb"(?m)^\.")
MAX_REPLY_BYTES = 64 * 1024


class SessionLost(Exception):
    """The connection broke (or timed out) before the body's final dot was written."""


class LostAfterData(Exception):
    """The connection broke after the final dot, before the reply: outcome unknown.
    ``result`` holds the replies that did arrive (MAIL, RCPT)."""

    def __init__(self, reason: str, result: TransactionResult) -> None:
        super().__init__(reason)
        self.result = result


def wire_bytes(mime: bytes) -> bytes:
    """CRLF line endings, dot-stuffing, and the terminating ``.`` (RFC 5321 §4.5.2).

    Messages visitmail renders already use CRLF and rarely have a line starting with a dot;
    for them the three regex passes are skipped (they were the largest CPU cost per message
    in the benchmark profile). The result is the same either way."""
    crlf = mime.count(b"\r\n")
    if (
        mime.count(b"\n") == crlf
        and mime.count(b"\r") == crlf
        and b"\n." not in mime
        and not mime.startswith(b".")
    ):
        return mime + (b".\r\n" if mime.endswith(b"\r\n") else b"\r\n.\r\n")
    data = _BARE_CR.sub(b"\r\n", _BARE_LF.sub(b"\r\n", mime))
    data = _LEADING_DOT.sub(b"..", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def _path(address: str) -> bytes:
    return f"<{address}>".encode()


class ReplyReader(asyncio.Protocol):
    """Parses the server's byte stream into complete replies (multi-line aware), in order."""

    def __init__(self) -> None:
        self.transport: asyncio.BaseTransport | None = None
        self._buffer = bytearray()
        self._lines: list[bytes] = []
        self._replies: deque[SmtpReply] = deque()
        self._changed = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self.lost: BaseException | None = None

    def data_received(self, data: bytes) -> None:
        self._buffer.extend(data)
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_REPLY_BYTES:
                    self._fail(SessionLost("the server sent an overlong reply line"))
                return
            line = bytes(self._buffer[: end + 1]).rstrip(b"\r\n")
            del self._buffer[: end + 1]
            if len(line) < 3 or not line[:3].isdigit():
                self._fail(SessionLost("the server sent a malformed reply"))
                return
            self._lines.append(line)
            if line[3:4] == b"-":
                continue  # a multi-line reply goes on
            code = int(self._lines[0][:3])
            text = "\n".join(x[4:].decode("utf-8", "replace").strip() for x in self._lines)
            self._lines = []
            self._replies.append(SmtpReply(code, text))
            self._changed.set()

    def _fail(self, exc: BaseException) -> None:
        self.lost = exc
        self._changed.set()
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc or SessionLost("the server closed the connection")
        self._changed.set()
        self._writable.set()

    def eof_received(self) -> bool:
        return False  # close our side too

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    async def writable(self) -> None:
        await self._writable.wait()

    async def next_reply(self) -> SmtpReply:
        while not self._replies:
            if self.lost is not None:
                raise SessionLost(str(self.lost) or type(self.lost).__name__)
            self._changed.clear()
            await self._changed.wait()
        return self._replies.popleft()


@dataclass(frozen=True, slots=True)
class Envelope:
    """The SMTP envelope of one message: what MAIL and RCPT carry."""

    mail_from: str
    recipients: tuple[str, ...]


@dataclass
class _Ahead:
    """An envelope written after the previous body: its replies, or why they are missing
    (the connection is closed then)."""

    envelope: Envelope
    mail: SmtpReply | None = None
    rcpt: dict[str, SmtpReply] = field(default_factory=dict)
    go: SmtpReply | None = None
    error: SessionLost | None = None


@dataclass
class TransactionResult:
    mail: SmtpReply
    rcpt: dict[str, SmtpReply] = field(default_factory=dict)
    data: SmtpReply | None = None  # the final reply after the body, if the body was sent


class SmtpSession:
    """One ready connection: send transactions, RSET, QUIT. Not safe for concurrent use;
    the pool hands it to one sender at a time."""

    def __init__(
        self, transport: asyncio.WriteTransport, reader: ReplyReader, *, pipelining: bool
    ) -> None:
        self._transport = transport
        self._reader = reader
        self.pipelining = pipelining
        self._ahead: _Ahead | None = None

    @classmethod
    def adopt(cls, client: aiosmtplib.SMTP) -> SmtpSession:
        """Take over ``client``'s connection (after EHLO/TLS/AUTH); the client is spent."""
        transport = client.transport
        if not isinstance(transport, asyncio.WriteTransport) or transport.is_closing():
            raise SessionLost("the connection closed before it could be used")
        pipelining = client.supports_extension("pipelining")
        sock = transport.get_extra_info("socket")
        if sock is not None:  # the final dot must not wait for an ACK (Nagle)
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = ReplyReader()
        reader.transport = transport
        transport.set_protocol(reader)
        client.protocol = None  # aiosmtplib must not touch the transport any more
        client.transport = None
        return cls(transport, reader, pipelining=pipelining)

    @property
    def connected(self) -> bool:
        return self._reader.lost is None and not self._transport.is_closing()

    def _write(self, data: bytes) -> None:
        if not self.connected:
            raise SessionLost("the connection is closed")
        self._transport.write(data)

    async def _reply(self, seconds: float) -> SmtpReply:
        try:
            async with asyncio.timeout(seconds):
                return await self._reader.next_reply()
        except TimeoutError:
            self.close()
            raise SessionLost(f"no reply within {seconds:g} s") from None

    async def _command(self, line: bytes, seconds: float) -> SmtpReply:
        self._write(line + b"\r\n")
        return await self._reply(seconds)

    def prepared_for(self, envelope: Envelope) -> bool:
        """Whether ``envelope`` went out with the previous body (see ``then=``)."""
        return self._ahead is not None and self._ahead.envelope == envelope

    async def transaction(
        self,
        mail_from: str,
        recipients: list[str],
        body: bytes,
        *,
        seconds: float,
        reset_first: bool = False,
        then: Envelope | None = None,
    ) -> TransactionResult:
        """MAIL FROM, RCPT TO each recipient, DATA and the body (``wire_bytes`` applied),
        pipelined when offered. ``reset_first`` starts with RSET (between messages on a
        reused connection; inside the same pipelined write, so it costs no round trip).

        ``then``: the envelope of the message this connection carries next. With
        PIPELINING it is written right after this body's final dot (RSET first), its
        replies are read after this body's reply and kept for the next call with that
        envelope, which then writes only its body. The caller must make that call next
        (or close the session): once the server said 354 only a body may follow.

        Raises :class:`SessionLost` before the final dot (also when RSET is refused) and
        :class:`LostAfterData` after it. A failure while reading ``then``'s replies does
        not touch this message's result: it is raised by the next call instead."""
        envelope = Envelope(mail_from, tuple(recipients))
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            if ahead.envelope != envelope:
                self.close()  # the server waits for another message's body: abandon it
                raise SessionLost("the connection was prepared for another message")
            if ahead.error is not None:
                raise ahead.error
            assert ahead.mail is not None
            assert ahead.go is not None
            mail, go = ahead.mail, ahead.go
            result = TransactionResult(mail, dict(ahead.rcpt))
        elif self.pipelining:
            self._write(self._envelope_bytes(envelope, reset_first))
            if reset_first:
                self._check_reset(await self._reply(seconds))
            mail = await self._reply(seconds)
            result = TransactionResult(mail)
            for r in recipients:
                result.rcpt[r] = await self._reply(seconds)
            go = await self._reply(seconds)
        else:
            if reset_first:
                self._check_reset(await self._command(b"RSET", seconds))
            mail = await self._command(b"MAIL FROM:" + _path(mail_from), seconds)
            result = TransactionResult(mail)
            if mail.code >= 300:
                return result
            for r in recipients:
                result.rcpt[r] = await self._command(b"RCPT TO:" + _path(r), seconds)
            if not any(reply.code < 300 for reply in result.rcpt.values()):
                await self.reset(seconds)
                return result
            go = await self._command(b"DATA", seconds)

        accepted = mail.code < 300 and any(reply.code < 300 for reply in result.rcpt.values())
        if go.code != 354:
            if mail.code < 300:
                for r, reply in result.rcpt.items():
                    if reply.code < 300:
                        result.rcpt[r] = go  # DATA refused: it answers for them
                await self.reset(seconds)
            return result
        if not accepted:
            # RFC 2920 §3.1: the server said 354 though nobody was accepted; end it empty.
            await self._command(b".", seconds)
            await self.reset(seconds)
            return result
        await self._reader.writable()
        coalesce = then is not None and self.pipelining
        data = wire_bytes(body)
        if coalesce:
            assert then is not None
            data += self._envelope_bytes(then, True)
        self._write(data)
        try:
            result.data = await self._reply(seconds)
        except SessionLost as exc:
            self.close()
            raise LostAfterData(str(exc), result) from exc
        if coalesce:
            assert then is not None
            self._ahead = await self._read_ahead(then, seconds)
        return result

    @staticmethod
    def _envelope_bytes(envelope: Envelope, reset_first: bool) -> bytes:
        batch = [b"RSET"] if reset_first else []
        batch.append(b"MAIL FROM:" + _path(envelope.mail_from))
        batch += [b"RCPT TO:" + _path(r) for r in envelope.recipients]
        batch.append(b"DATA")
        return b"\r\n".join(batch) + b"\r\n"

    async def _read_ahead(self, envelope: Envelope, seconds: float) -> _Ahead:
        """The replies to an envelope written after a body (RSET first)."""
        ahead = _Ahead(envelope)
        try:
            self._check_reset(await self._reply(seconds))
            ahead.mail = await self._reply(seconds)
            for r in envelope.recipients:
                ahead.rcpt[r] = await self._reply(seconds)
            ahead.go = await self._reply(seconds)
        except SessionLost as exc:
            self.close()
            ahead.error = exc
        return ahead

    def _check_reset(self, reply: SmtpReply) -> None:
        if reply.code >= 300:
            self.close()  # the pipelined rest is not worth reading
            raise SessionLost(f"RSET was refused: {reply.code} {reply.text}")

    async def reset(self, seconds: float) -> None:
        """RSET after a refused transaction, so the connection can carry the next one."""
        with contextlib.suppress(SessionLost):
            reply = await self._command(b"RSET", seconds)
            if reply.code >= 300:
                self.close()

    async def quit(self, seconds: float = 5.0) -> None:
        """QUIT politely, then close; never raises. A session prepared for a next message
        that never came is only closed: after 354 a QUIT would be read as body text."""
        if self.connected and self._ahead is None:
            with contextlib.suppress(SessionLost, OSError):
                await self._command(b"QUIT", seconds)
        self.close()

    def close(self) -> None:
        if not self._transport.is_closing():
            self._transport.close()

    def abort(self) -> None:
        """Drop the connection at once, unsent data included (shutdown ran out of time).
        A transaction waiting on this session ends now: :class:`SessionLost` before the
        final dot was written, :class:`LostAfterData` after it."""
        self._transport.abort()
