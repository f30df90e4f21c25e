"""Delivers claimed messages over pooled connections: MAIL FROM, RCPT TO per recipient,
DATA with the pre-rendered bytes, and per-recipient results.

The one subtle case is the *unknown outcome*: once the final ``.`` has been written, a lost
connection or a missing reply means the server may have taken the message. That is reported
as ``unknown`` (never as a plain failure), so the caller retries once and flags it.
"""

from __future__ import annotations

import asyncio
import re
import time
from uuid import UUID

import aiosmtplib
from aiosmtplib.errors import (
    SMTPException,
    SMTPRecipientRefused,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)

from visitmail.adapters.smtp.connect import Resolver, open_connection
from visitmail.adapters.smtp.pool import ConnectionPool, PooledConnection, close_quietly
from visitmail.domain.diagnosis import StepName
from visitmail.domain.network_policy import NetworkPolicy
from visitmail.domain.outbox import AttemptOutcome, FailureStage, RecipientResult
from visitmail.domain.smtp_errors import SmtpFailure
from visitmail.domain.smtp_replies import SmtpReply
from visitmail.domain.smtp_settings import SmtpSecrets, SmtpSettings
from visitmail.services.outbox_ports import ClaimedMessage

_BARE_LF = re.compile(rb"(?<!\r)\n")
_BARE_CR = re.compile(rb"\r(?!\n)")
_LEADING_DOT = re.compile(rb"(?m)^\.")

_STAGES = {
    StepName.RESOLVE: FailureStage.CONNECT,
    StepName.CONNECT: FailureStage.CONNECT,
    StepName.GREETING: FailureStage.CONNECT,
    StepName.EHLO: FailureStage.PROTOCOL,
    StepName.TLS: FailureStage.TLS,
    StepName.AUTH: FailureStage.AUTH,
}


def wire_bytes(mime: bytes) -> bytes:
    """CRLF line endings, dot-stuffing, and the terminating ``.`` (RFC 5321 §4.5.2)."""
    data = _BARE_CR.sub(b"\r\n", _BARE_LF.sub(b"\r\n", mime))
    data = _LEADING_DOT.sub(b"..", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


class _Stale(Exception):
    """A reused connection turned out dead before anything was sent: try a fresh one."""


class SmtpSender:
    """The :class:`MessageTransport` over aiosmtplib, one pool per organization's server."""

    def __init__(
        self,
        policy: NetworkPolicy,
        *,
        allow_plaintext_auth: bool = False,
        idle_seconds: float = 30.0,
        resolver: Resolver | None = None,
    ) -> None:
        self._policy = policy
        self._plaintext = allow_plaintext_auth
        self._idle = idle_seconds
        self._resolver = resolver
        self._pools: dict[UUID, tuple[SmtpSettings, SmtpSecrets, ConnectionPool]] = {}

    def _pool(self, org: UUID, settings: SmtpSettings, secrets: SmtpSecrets) -> ConnectionPool:
        current = self._pools.get(org)
        if current and current[0] == settings and current[1] == secrets:
            return current[2]
        if current:  # the settings changed: drain the old connections in the background
            asyncio.get_running_loop().create_task(current[2].close())

        async def opener() -> aiosmtplib.SMTP:
            return await open_connection(
                settings,
                secrets,
                self._policy,
                allow_plaintext_auth=self._plaintext,
                resolver=self._resolver,
            )

        pool = ConnectionPool(
            opener,
            max_connections=settings.limits.max_connections,
            max_messages=settings.limits.max_messages_per_connection,
            idle_seconds=self._idle,
        )
        self._pools[org] = (settings, secrets, pool)
        return pool

    async def send(
        self,
        organization_id: UUID,
        settings: SmtpSettings,
        secrets: SmtpSecrets,
        message: ClaimedMessage,
    ) -> AttemptOutcome:
        pool = self._pool(organization_id, settings, secrets)
        started = time.monotonic()
        for _ in range(2):
            try:
                conn = await pool.acquire()
            except SmtpFailure as failure:
                return _server_failure(failure, started)
            reusable = False
            try:
                outcome = await self._transact(conn, settings, message, started)
                reusable = True
                return outcome
            except _Stale:
                if conn.fresh:
                    return AttemptOutcome(
                        server_failure=FailureStage.PROTOCOL,
                        failure_text="the server closed the connection before MAIL FROM",
                        duration_ms=_ms(started),
                    )
                continue  # an idle pooled connection had died: once more, on a new one
            finally:
                conn.sent += 1
                pool.release(conn, reusable=reusable and conn.client.is_connected)
        return AttemptOutcome(
            server_failure=FailureStage.PROTOCOL,
            failure_text="the server closed two connections in a row before MAIL FROM",
            duration_ms=_ms(started),
        )

    async def _transact(
        self,
        conn: PooledConnection,
        settings: SmtpSettings,
        message: ClaimedMessage,
        started: float,
    ) -> AttemptOutcome:
        client = conn.client
        timeout = settings.timeouts.command
        try:
            await client.mail(message.mail_from, timeout=timeout)
        except SMTPResponseException as exc:
            if (exc.code == 421 or not client.is_connected) and not conn.fresh:
                raise _Stale from exc
            reply = SmtpReply(exc.code, exc.message)
            await _reset(client, timeout)
            return AttemptOutcome(
                results=[RecipientResult(r, reply) for r in message.open_recipients],
                duration_ms=_ms(started),
            )
        except (SMTPServerDisconnected, ConnectionError) as exc:
            raise _Stale from exc

        try:
            results: list[RecipientResult] = []
            accepted: list[str] = []
            for address in message.open_recipients:
                try:
                    await client.rcpt(address, timeout=timeout)
                    accepted.append(address)
                except SMTPRecipientRefused as exc:
                    results.append(RecipientResult(address, SmtpReply(exc.code, exc.message)))
                except SMTPResponseException as exc:
                    results.append(RecipientResult(address, SmtpReply(exc.code, exc.message)))
            if not accepted:
                await _reset(client, timeout)
                return AttemptOutcome(results=results, duration_ms=_ms(started))

            start = await client.execute_command(b"DATA", timeout=timeout)
            if start.code != 354:
                reply = SmtpReply(start.code, start.message)
                results.extend(RecipientResult(a, reply) for a in accepted)
                await _reset(client, timeout)
                return AttemptOutcome(results=results, duration_ms=_ms(started))
        except (SMTPException, ConnectionError, OSError) as exc:
            # Broken before the data went out: nothing was delivered, a retry is safe.
            client.close()
            return AttemptOutcome(
                server_failure=FailureStage.PROTOCOL,
                failure_text=f"connection lost during the envelope: {type(exc).__name__}",
                duration_ms=_ms(started),
            )

        protocol = client.protocol
        if protocol is None:
            return AttemptOutcome(
                server_failure=FailureStage.PROTOCOL,
                failure_text="connection lost before the data",
                duration_ms=_ms(started),
            )
        try:
            protocol.write(wire_bytes(message.mime))
        except SMTPServerDisconnected:
            return AttemptOutcome(
                server_failure=FailureStage.PROTOCOL,
                failure_text="connection lost before the data",
                duration_ms=_ms(started),
            )
        try:
            final = await protocol.read_response(timeout=timeout)
        except (SMTPServerDisconnected, SMTPTimeoutError, ConnectionError, OSError):
            client.close()
            return AttemptOutcome(
                results=results, unknown_recipients=accepted, duration_ms=_ms(started)
            )
        reply = SmtpReply(final.code, final.message)
        results.extend(RecipientResult(a, reply) for a in accepted)
        return AttemptOutcome(results=results, duration_ms=_ms(started))

    async def probe(
        self, organization_id: UUID, settings: SmtpSettings, secrets: SmtpSecrets
    ) -> str | None:
        try:
            client = await open_connection(
                settings,
                secrets,
                self._policy,
                allow_plaintext_auth=self._plaintext,
                resolver=self._resolver,
            )
        except SmtpFailure as failure:
            return f"{failure.stage.value}: {failure.message}"
        await close_quietly(client)
        return None

    def close_idle(self) -> None:
        for _, _, pool in self._pools.values():
            pool.close_idle(self._idle)

    async def close(self) -> None:
        pools, self._pools = self._pools, {}
        await asyncio.gather(*(p.close() for _, _, p in pools.values()))


async def _reset(client: aiosmtplib.SMTP, seconds: float) -> None:
    """RSET after a refused transaction, so the connection can carry the next message."""
    try:
        await client.rset(timeout=seconds)
    except SMTPException:
        client.close()


def _server_failure(failure: SmtpFailure, started: float) -> AttemptOutcome:
    text = failure.message
    if failure.reply_code is not None:
        text = f"{failure.reply_code} {failure.reply_text or ''} — {text}".strip()
    return AttemptOutcome(
        server_failure=_STAGES.get(failure.stage, FailureStage.PROTOCOL),
        failure_text=text,
        duration_ms=_ms(started),
    )


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
