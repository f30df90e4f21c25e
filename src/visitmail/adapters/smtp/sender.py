"""Delivers claimed messages over pooled, pipelined connections and reports each
recipient's result (the :class:`MessageTransport` port).

Connections are opened by ``connect.open_connection`` (proxy, TLS, STARTTLS, AUTH) and then
driven by :class:`SmtpSession`. The *unknown outcome* is reported as such: once the final
``.`` has been written, a lost connection or a missing reply means the server may have taken
the message, so the caller retries once with the same Message-ID and flags it.

A stream of messages on one connection costs one round trip each: ``send(message,
following=next)`` writes the next message's envelope behind this body (see
``SmtpSession.transaction(then=...)``) and keeps the connection *reserved* for ``next``,
out of the pool, until ``send(next)`` comes; the caller makes that call next. A reserved
connection that is never used is closed (never reused: the server waits for a body).

With ``auth_method = oauth2`` each physical connection asks the token source for an access
token (cached while it has 5 minutes left). A 535 to that token forces one refresh and one
more connection; if that is refused too, or no token can be had, the connection fails at
the ``auth`` stage with the fix in its text, which counts towards the queue's pause.

:meth:`SmtpSender.abort` ends every conversation at once (shutdown out of time): each
``send`` in progress returns promptly, a protocol failure if the final ``.`` had not been
written (nothing was delivered), the unknown outcome if it had.
"""

from __future__ import annotations

import asyncio
import time
from uuid import UUID

import aiosmtplib

from visitmail.adapters.smtp.connect import Resolver, open_connection
from visitmail.adapters.smtp.pool import ConnectionPool, PooledConnection, close_quietly
from visitmail.adapters.smtp.session import (
    Envelope,
    LostAfterData,
    SessionLost,
    SmtpSession,
    TransactionResult,
)
from visitmail.domain.diagnosis import StepName
from visitmail.domain.errors import VisitmailError
from visitmail.domain.network_policy import NetworkPolicy
from visitmail.domain.oauth_tokens import AccessToken, OAuthTokenFailed
from visitmail.domain.outbox import AttemptOutcome, FailureStage, RecipientResult
from visitmail.domain.smtp_errors import SmtpAuthFailed, SmtpFailure
from visitmail.domain.smtp_settings import SmtpSecrets, SmtpSettings
from visitmail.services.oauth_tokens import AccessTokenSource
from visitmail.services.outbox_ports import ClaimedMessage

_STAGES = {
    StepName.RESOLVE: FailureStage.CONNECT,
    StepName.CONNECT: FailureStage.CONNECT,
    StepName.GREETING: FailureStage.CONNECT,
    StepName.EHLO: FailureStage.PROTOCOL,
    StepName.TLS: FailureStage.TLS,
    StepName.AUTH: FailureStage.AUTH,
}


class SmtpSender:
    """One connection pool per organization's server (rebuilt when its settings change)."""

    def __init__(
        self,
        policy: NetworkPolicy,
        *,
        allow_plaintext_auth: bool = False,
        idle_seconds: float = 30.0,
        resolver: Resolver | None = None,
        tokens: AccessTokenSource | None = None,
    ) -> None:
        self._policy = policy
        self._tokens = tokens
        self._plaintext = allow_plaintext_auth
        self._idle = idle_seconds
        self._resolver = resolver
        self._pools: dict[UUID, tuple[SmtpSettings, SmtpSecrets, ConnectionPool]] = {}
        self._draining: set[asyncio.Task[None]] = set()
        # message id -> (its pool, the connection that already carries its envelope)
        self._reserved: dict[UUID, tuple[ConnectionPool, PooledConnection]] = {}
        self._aborted = False

    async def _connect(
        self, settings: SmtpSettings, secrets: SmtpSecrets, token: AccessToken | None = None
    ) -> aiosmtplib.SMTP:
        return await open_connection(
            settings,
            secrets,
            self._policy,
            allow_plaintext_auth=self._plaintext,
            resolver=self._resolver,
            access_token=token.token if token else None,
        )

    async def _token(self, org: UUID, settings: SmtpSettings, rejected: str | None) -> AccessToken:
        if self._tokens is None:
            raise SmtpAuthFailed(
                "OAuth2 sending is not available in this worker.",
                stage=StepName.AUTH,
                fix="The operator must run a worker that has the token service.",
            )
        assert settings.username is not None  # validate() requires the mailbox for oauth2
        try:
            return await self._tokens.access_token(org, settings.username, rejected=rejected)
        except OAuthTokenFailed as e:
            # The fix is part of the text: it is what the paused queue tells the admin.
            raise SmtpAuthFailed(
                f"{e.message} {e.fix}",
                stage=StepName.AUTH,
                fix=e.fix,
                code=e.code,
                needs_person=e.reconnect,
            ) from e
        except VisitmailError as e:  # a sealed secret no master key opens
            raise SmtpAuthFailed(e.message, stage=StepName.AUTH, code=e.code) from e

    async def _connect_oauth(
        self, org: UUID, settings: SmtpSettings, secrets: SmtpSecrets
    ) -> aiosmtplib.SMTP:
        token = await self._token(org, settings, None)
        try:
            return await self._connect(settings, secrets, token)
        except SmtpAuthFailed as failure:
            if failure.reply_code != 535:
                raise
        # The server refused a token we believed valid (revoked, or its cache is ahead of
        # ours): one forced refresh and one more connection, then it counts as a failure.
        fresh = await self._token(org, settings, token.token)
        try:
            return await self._connect(settings, secrets, fresh)
        except SmtpAuthFailed as failure:
            if failure.reply_code != 535:
                raise
            raise SmtpAuthFailed(
                f"{failure.message} A freshly fetched token was refused too. "
                f"{failure.fix or ''}".strip(),
                stage=StepName.AUTH,
                fix=failure.fix,
                reply_code=failure.reply_code,
                reply_text=failure.reply_text,
                details=failure.details,
                needs_person=True,
            ) from failure

    async def _open(self, org: UUID, settings: SmtpSettings, secrets: SmtpSecrets) -> SmtpSession:
        if settings.uses_oauth:
            client = await self._connect_oauth(org, settings, secrets)
        else:
            client = await self._connect(settings, secrets)
        try:
            return SmtpSession.adopt(client)
        except SessionLost:
            client.close()
            raise

    def _pool(self, org: UUID, settings: SmtpSettings, secrets: SmtpSecrets) -> ConnectionPool:
        current = self._pools.get(org)
        if current and current[0] == settings and current[1] == secrets:
            return current[2]
        if current:  # the settings changed: drain the old connections in the background
            task = asyncio.get_running_loop().create_task(current[2].close())
            self._draining.add(task)
            task.add_done_callback(self._draining.discard)

        async def opener() -> SmtpSession:
            return await self._open(org, settings, secrets)

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
        *,
        following: ClaimedMessage | None = None,
    ) -> AttemptOutcome:
        """One attempt for ``message``. ``following``: the message the caller sends next
        through this organization; its envelope may ride behind this body, and then the
        connection waits, reserved, for ``send(following)``."""
        started = time.monotonic()
        if self._aborted:
            return _protocol_failure("visitmail is shutting down", started)
        pool = self._pool(organization_id, settings, secrets)
        then = _envelope(following) if following is not None else None
        reserved = self._reserved.pop(message.id, None)
        for _ in range(2):
            if reserved is not None and reserved[0] is pool:
                conn = reserved[1]
            else:
                if reserved is not None:  # the pool was rebuilt meanwhile
                    reserved[0].release(reserved[1], reusable=False)
                try:
                    conn = await pool.acquire()
                except SmtpFailure as failure:
                    return _server_failure(failure, started)
                except SessionLost as exc:
                    return _protocol_failure(str(exc), started)
            reserved = None
            reused = not conn.fresh
            conn.sent += 1
            last = conn.sent >= settings.limits.max_messages_per_connection
            try:
                result = await conn.session.transaction(
                    message.mail_from,
                    message.open_recipients,
                    message.mime,
                    seconds=settings.timeouts.command,
                    reset_first=reused,  # RSET between messages on a reused connection
                    then=None if last else then,
                )
            except LostAfterData as lost:
                pool.release(conn, reusable=False)
                rcpt = lost.result.rcpt
                return AttemptOutcome(
                    results=[RecipientResult(a, r) for a, r in rcpt.items() if r.code >= 300],
                    unknown_recipients=[a for a, r in rcpt.items() if r.code < 300],
                    duration_ms=_ms(started),
                )
            except SessionLost as exc:
                pool.release(conn, reusable=False)
                if reused:
                    continue  # an idle pooled connection had died: once more, on a new one
                return _protocol_failure(f"connection lost before the data: {exc}", started)
            if following is not None and then is not None and conn.session.prepared_for(then):
                self._reserved[following.id] = (pool, conn)  # its envelope is on the wire
            else:
                pool.release(conn, reusable=True)
            if result.mail.code == 421 and reused:
                continue  # the server is closing this old connection: use a new one
            return _outcome(result, message, started)
        return _protocol_failure("the server closed two connections in a row", started)

    def forget(self, message_id: UUID) -> None:
        """``message_id`` will not be sent after all: close the connection reserved for
        it, if any (its envelope was sent; only a body could follow)."""
        reserved = self._reserved.pop(message_id, None)
        if reserved is not None:
            reserved[0].release(reserved[1], reusable=False)

    async def probe(
        self, organization_id: UUID, settings: SmtpSettings, secrets: SmtpSecrets
    ) -> str | None:
        try:
            session = await self._open(organization_id, settings, secrets)
        except SmtpFailure as failure:
            return f"{failure.stage.value}: {_failure_text(failure)}"
        except SessionLost as exc:
            return f"protocol: {exc}"
        await close_quietly(session)
        return None

    def abort(self) -> None:
        """Drop every connection, busy or idle, and open no new one."""
        self._aborted = True
        for _, _, pool in self._pools.values():
            pool.abort()
        for message_id in list(self._reserved):
            self.forget(message_id)

    def close_idle(self) -> None:
        for _, _, pool in self._pools.values():
            pool.close_idle(self._idle)

    async def close(self) -> None:
        for message_id in list(self._reserved):
            self.forget(message_id)
        pools, self._pools = self._pools, {}
        await asyncio.gather(*(p.close() for _, _, p in pools.values()), *self._draining)


def _envelope(message: ClaimedMessage) -> Envelope:
    return Envelope(message.mail_from, tuple(message.open_recipients))


def _outcome(result: TransactionResult, message: ClaimedMessage, started: float) -> AttemptOutcome:
    if result.mail.code >= 300:  # MAIL FROM refused: it answers for every recipient
        return AttemptOutcome(
            results=[RecipientResult(r, result.mail) for r in message.open_recipients],
            duration_ms=_ms(started),
        )
    results = []
    for address in message.open_recipients:
        reply = result.rcpt.get(address)
        if reply is None:
            continue
        if reply.code < 300 and result.data is not None:
            reply = result.data  # accepted at RCPT: the final reply after the body decides
        results.append(RecipientResult(address, reply))
    return AttemptOutcome(results=results, duration_ms=_ms(started))


def _failure_text(failure: SmtpFailure) -> str:
    """The server's reply first (as the outbox and the health record keep it, so its
    explanation can be found again), then what it means."""
    if failure.reply_code is None:
        return failure.message
    return f"{failure.reply_code} {failure.reply_text or ''} — {failure.message}".strip()


def _server_failure(failure: SmtpFailure, started: float) -> AttemptOutcome:
    return AttemptOutcome(
        server_failure=_STAGES.get(failure.stage, FailureStage.PROTOCOL),
        failure_text=_failure_text(failure),
        failure_reply=failure.reply,
        pause_queue=failure.needs_person,
        duration_ms=_ms(started),
    )


def _protocol_failure(text: str, started: float) -> AttemptOutcome:
    return AttemptOutcome(
        server_failure=FailureStage.PROTOCOL, failure_text=text, duration_ms=_ms(started)
    )


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
