"""An aiosmtpd server with SASL XOAUTH2 for tests: the bearer token is checked against the
live tokens of a test :class:`~tests.support.oauth_provider.OAuthProvider`.

``style`` decides how a bad token is refused: ``microsoft`` answers ``535 5.7.3
Authentication unsuccessful`` at once; ``google`` first sends the ``334 <base64 JSON>``
challenge (status 401), waits for the client's empty line, then answers ``535 5.7.8``.
``refuse(mailbox)`` can force a reply line whatever the token (e.g. ``535 5.7.139 ...
SmtpClientAuthentication is disabled``).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import trustme
from aiosmtpd.smtp import SMTP, AuthResult

from tests.support.oauth_provider import OAuthProvider
from tests.support.smtp_servers import (
    HOST,
    Recorder,
    ServerSecurity,
    SmtpServer,
    _Handler,
    _RecordingSMTP,
    server_tls_context,
)

GOOGLE_CHALLENGE = {"status": "401", "schemes": "Bearer", "scope": "https://mail.google.com/"}
MS_REFUSED = "535 5.7.3 Authentication unsuccessful [SN4PR0501CA0054.namprd05.prod.outlook.com]"
GOOGLE_REFUSED = (
    "535 5.7.8 Username and Password not accepted. For more information, go to "
    "https://support.google.com/mail/?p=BadCredentials"
)


@dataclass
class OAuthLog:
    """What the server saw of XOAUTH2: (mailbox, accepted) per attempt; the tokens used."""

    attempts: list[tuple[str, bool]] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)


class _OAuthHandler(_Handler):
    def __init__(
        self,
        recorder: Recorder,
        provider: OAuthProvider,
        log: OAuthLog,
        style: Literal["microsoft", "google"],
        refuse: Callable[[str], str | None],
    ) -> None:
        super().__init__(recorder, None)
        self.provider = provider
        self.log = log
        self.style = style
        self.refuse = refuse

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:  # noqa: N802
        if len(args) < 2:
            return AuthResult(
                success=False, handled=False, message="501 5.5.2 initial response required"
            )
        try:
            raw = base64.b64decode(args[1], validate=True).decode()
            user_part, auth_part, *_ = raw.split("\x01")
            mailbox = user_part.removeprefix("user=")
            token = auth_part.removeprefix("auth=Bearer ")
        except ValueError:
            return AuthResult(
                success=False, handled=False, message="501 5.5.2 cannot decode response"
            )
        self.recorder.auth_logins.append(mailbox)
        self.log.tokens.append(token)
        forced = self.refuse(mailbox)
        ok = forced is None and self.provider.live(token, mailbox)
        self.log.attempts.append((mailbox, ok))
        if ok:
            return AuthResult(success=True, auth_data=mailbox)
        if forced is not None:
            return AuthResult(success=False, handled=False, message=forced)
        if self.style == "google":
            await server.challenge_auth(json.dumps(GOOGLE_CHALLENGE))
            return AuthResult(success=False, handled=False, message=GOOGLE_REFUSED)
        return AuthResult(success=False, handled=False, message=MS_REFUSED)


@dataclass
class OAuthSmtpServer:
    server: SmtpServer
    log: OAuthLog

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def recorder(self) -> Recorder:
        return self.server.recorder

    async def close(self) -> None:
        await self.server.close()


async def start_oauth_smtp_server(
    provider: OAuthProvider,
    *,
    style: Literal["microsoft", "google"] = "microsoft",
    security: ServerSecurity = "none",
    cert: trustme.LeafCert | None = None,
    refuse: Callable[[str], str | None] = lambda _mailbox: None,
) -> OAuthSmtpServer:
    """Start on 127.0.0.1 (ephemeral port). ``security``: as ``start_smtp_server``; AUTH is
    offered without TLS too (the tests allow plain text where they use ``none``)."""
    recorder = Recorder()
    log = OAuthLog()
    handler = _OAuthHandler(recorder, provider, log, style, refuse)
    tls_context = server_tls_context(cert) if cert is not None else None
    loop = asyncio.get_running_loop()

    def factory() -> _RecordingSMTP:
        return _RecordingSMTP(
            handler,
            recorder,
            hostname="mx.example.com",
            tls_context=tls_context if security == "starttls" else None,
            auth_require_tls=False,
            auth_exclude_mechanism=["PLAIN", "LOGIN"],
            timeout=30,
            loop=loop,
        )

    server = await loop.create_server(
        factory, HOST, 0, ssl=tls_context if security == "tls" else None
    )
    port = int(server.sockets[0].getsockname()[1])
    smtp = SmtpServer(host=HOST, port=port, security=security, recorder=recorder, _server=server)
    return OAuthSmtpServer(smtp, log)
