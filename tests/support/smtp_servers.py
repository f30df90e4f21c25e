"""Real SMTP servers for tests: aiosmtpd on 127.0.0.1, an ephemeral port, in the test's own
event loop, with TLS certificates from trustme.

``start_smtp_server`` covers what the SMTP adapter meets in the wild: implicit TLS,
STARTTLS, no STARTTLS at all, AUTH with one user, a sender that is refused (553), and a
certificate from a CA the client does not trust. Every server records what it saw (command
verbs, AUTH attempts, received messages), so a test can assert on the server side, e.g.
"no AUTH reached the server".

Usage::

    certs = Certificates.create()
    server = await start_smtp_server(security="starttls", cert=certs.trusted_leaf)
    ...  # connect to server.host / server.port, trust certs.trusted_ca_pem
    await server.close()
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import functools
import hashlib
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Literal

import trustme
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

ServerSecurity = Literal["tls", "starttls", "none"]
HOST = "127.0.0.1"
SERVER_NAMES = ("127.0.0.1", "localhost", "mx.example.com")


@dataclass
class Certificates:
    """A CA the tests trust (passed to the client as a custom CA) and one they do not.

    ``trusted_leaf`` / ``untrusted_leaf`` are server certificates for 127.0.0.1 and
    localhost issued by each.
    """

    trusted_ca: trustme.CA
    untrusted_ca: trustme.CA
    trusted_leaf: trustme.LeafCert
    untrusted_leaf: trustme.LeafCert

    @classmethod
    def create(cls) -> Certificates:
        trusted, untrusted = trustme.CA(), trustme.CA()
        return cls(
            trusted_ca=trusted,
            untrusted_ca=untrusted,
            trusted_leaf=trusted.issue_cert(*SERVER_NAMES),
            untrusted_leaf=untrusted.issue_cert(*SERVER_NAMES),
        )

    @property
    def trusted_ca_pem(self) -> str:
        return self.trusted_ca.cert_pem.bytes().decode()

    @property
    def untrusted_ca_pem(self) -> str:
        return self.untrusted_ca.cert_pem.bytes().decode()


def leaf_sha256(leaf: trustme.LeafCert) -> str:
    """The SHA-256 fingerprint (hex) of a leaf certificate, as an admin would pin it."""
    der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())
    return hashlib.sha256(der).hexdigest()


@dataclass
class ReceivedMessage:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes

    def parsed(self) -> EmailMessage:
        message = email.message_from_bytes(self.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        return message


@dataclass
class Recorder:
    """What a server saw. ``auth_logins`` holds the user names of AUTH attempts (never the
    password); ``commands`` every command verb in order (``EHLO``, ``AUTH``, ``MAIL`` ...)."""

    commands: list[str] = field(default_factory=list)
    auth_logins: list[str] = field(default_factory=list)
    messages: list[ReceivedMessage] = field(default_factory=list)
    connections: int = 0


@dataclass
class Script:
    """How a test server answers, beyond "250 OK".

    ``rcpt``: address → reply line (e.g. ``"550 5.1.1 no such user"``) or ``None`` for OK;
    ``mail``: the sender → MAIL FROM's reply line, or ``None`` for OK;
    ``data``: the n-th DATA (1-based) → reply line, or ``None`` for 250;
    ``drop_after_data``: the n-th DATA → True to close the connection after the final dot
    without replying (the "unknown outcome");
    ``hold_rcpt`` / ``hold_data``: awaited before answering a RCPT (with the address) or a
    DATA (with n, after the final dot arrived), e.g. a :class:`Gate` the test opens.
    """

    rcpt: Callable[[str], str | None] = lambda _address: None
    mail: Callable[[str], str | None] = lambda _address: None  # MAIL FROM's reply, None: OK
    data: Callable[[int], str | None] = lambda _n: None
    drop_after_data: Callable[[int], bool] = lambda _n: False
    data_delay: float = 0.0  # seconds before answering each DATA (a slow server)
    data_count: int = 0
    hold_rcpt: Callable[[str], Awaitable[None]] | None = None
    hold_data: Callable[[int], Awaitable[None]] | None = None


class Gate:
    """Holds a server's reply until the test opens it, without sleeps: ``reached`` is set
    when a conversation arrives at the gate, ``open()`` lets every held one go on.
    ``which``: which calls are held (the n-th DATA, an address); the others pass."""

    def __init__(self, which: Callable[[Any], bool] = lambda _key: True) -> None:
        self.which = which
        self.reached = asyncio.Event()
        self.opened = asyncio.Event()
        self.held = 0

    async def __call__(self, key: Any) -> None:
        if not self.which(key) or self.opened.is_set():
            return
        self.held += 1
        self.reached.set()
        await self.opened.wait()

    def open(self) -> None:
        self.opened.set()


class _Handler:
    def __init__(
        self, recorder: Recorder, reject_sender: str | None, script: Script | None = None
    ) -> None:
        self.recorder = recorder
        self.reject_sender = reject_sender
        self.script = script or Script()

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.script.hold_rcpt is not None:
            await self.script.hold_rcpt(address)
        reply = self.script.rcpt(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_MAIL(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.reject_sender and address.lower() == self.reject_sender.lower():
            return "553 5.7.1 Sender address rejected: not owned by user"
        reply = self.script.mail(address)
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        self.script.data_count += 1
        n = self.script.data_count
        if self.script.data_delay:
            await asyncio.sleep(self.script.data_delay)
        if self.script.hold_data is not None:
            await self.script.hold_data(n)
        content = envelope.original_content or b""
        reply = self.script.data(n)
        if reply is None or reply.startswith("2"):
            self.recorder.messages.append(
                ReceivedMessage(str(envelope.mail_from), list(envelope.rcpt_tos), content)
            )
        if self.script.drop_after_data(n):
            assert server.transport is not None
            server.transport.abort()  # the data arrived; the reply never will
        return reply or "250 2.0.0 Message accepted for delivery"


def _recording(verb: str) -> Callable[[SMTP, str | None], Awaitable[None]]:
    original = getattr(SMTP, f"smtp_{verb}")

    @functools.wraps(original)  # keeps aiosmtpd's HELP syntax attributes
    async def method(self: _RecordingSMTP, arg: str | None) -> None:
        self.recorder.commands.append(verb)
        await original(self, arg)

    return method


class _RecordingSMTP(SMTP):
    """aiosmtpd's SMTP that records every command verb it handles."""

    def __init__(self, handler: _Handler, recorder: Recorder, **kwargs: Any) -> None:
        self.recorder = recorder
        super().__init__(handler, **kwargs)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is None:  # not the STARTTLS re-entry
            self.recorder.connections += 1
        super().connection_made(transport)


for _verb in ("HELO", "EHLO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT"):
    setattr(_RecordingSMTP, f"smtp_{_verb}", _recording(_verb))


@dataclass
class SmtpServer:
    host: str
    port: int
    security: ServerSecurity
    recorder: Recorder
    _server: asyncio.Server

    @property
    def saw_auth(self) -> bool:
        return "AUTH" in self.recorder.commands or bool(self.recorder.auth_logins)

    async def close(self) -> None:
        self._server.close()
        await self._server.wait_closed()


def server_tls_context(leaf: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    return context


async def start_smtp_server(
    *,
    security: ServerSecurity = "none",
    cert: trustme.LeafCert | None = None,
    credentials: tuple[str, str] | None = None,
    auth_require_tls: bool | None = None,
    reject_sender: str | None = None,
    hostname: str = "mx.example.com",
    script: Script | None = None,
    port: int = 0,
    auth_reply: str | None = None,
) -> SmtpServer:
    """Start a server on 127.0.0.1 and ``port`` (0: an ephemeral one) in the running loop.

    ``security``: ``tls`` (implicit), ``starttls`` (offered, not required) or ``none`` (no
    STARTTLS offered). ``cert`` is required for ``tls`` / ``starttls``. ``credentials``:
    the one user/password AUTH accepts (PLAIN and LOGIN); wrong ones get 535 5.7.8.
    ``auth_require_tls`` defaults to True for ``starttls`` (AUTH only after STARTTLS);
    pass False to offer AUTH in plain text. ``reject_sender``: MAIL FROM this address gets
    553 5.7.1. ``auth_reply``: the reply every AUTH gets instead of 235 / 535 5.7.8 (a
    provider's refusal, lines separated by CRLF for a multi-line reply).
    """
    if security != "none" and cert is None:
        raise ValueError("a TLS server needs a certificate")
    recorder = Recorder()
    handler = _Handler(recorder, reject_sender, script)
    tls_context = server_tls_context(cert) if cert is not None else None
    if auth_require_tls is None:
        auth_require_tls = security == "starttls"
    loop = asyncio.get_running_loop()

    def authenticator(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: object
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword) or credentials is None:
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode(errors="replace")
        recorder.auth_logins.append(login)
        if auth_reply is not None:
            return AuthResult(success=False, handled=False, message=auth_reply)
        ok = (login, auth_data.password.decode(errors="replace")) == credentials
        return AuthResult(success=ok, handled=False)

    def factory() -> _RecordingSMTP:
        return _RecordingSMTP(
            handler,
            recorder,
            hostname=hostname,
            tls_context=tls_context if security == "starttls" else None,
            authenticator=authenticator if credentials else None,
            auth_require_tls=auth_require_tls,
            timeout=30,
            loop=loop,
        )

    server = await loop.create_server(
        factory, HOST, port, ssl=tls_context if security == "tls" else None
    )
    port = int(server.sockets[0].getsockname()[1])
    return SmtpServer(host=HOST, port=port, security=security, recorder=recorder, _server=server)


class Blackhole:
    """A loopback address:port where TCP connection attempts get no answer at all, like a
    firewall that silently drops packets.

    Routable "blackhole" addresses (10.255.255.1, TEST-NET) are not reliable: some networks
    and sandboxes answer them. Instead this listens with a backlog of 0 and fills the accept
    queue with one connection it never accepts; the kernel then drops further SYNs, so a
    client's ``connect`` hangs until its own timeout. Use as a context manager.
    """

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._filler = socket.socket()
        self.host = HOST
        self.port = 0

    def __enter__(self) -> Blackhole:
        self._listener.bind((HOST, 0))
        self._listener.listen(0)
        self.port = int(self._listener.getsockname()[1])
        self._filler.settimeout(1.0)
        self._filler.connect((HOST, self.port))  # occupies the only queue slot
        return self

    def __exit__(self, *exc: object) -> None:
        self._filler.close()
        self._listener.close()
