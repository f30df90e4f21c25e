"""The delivery agents: one channel per transport behind one port, :class:`Channel`.

A channel takes one leased message and returns what happened to it as an
:class:`AttemptOutcome`; it never raises for the far side's behaviour (a refusal, a lost
connection, a bug in the transport all become outcomes) and writes nothing to the outbox.
The scheduler decides *when* a message goes; the settler writes *what happened*.

- :class:`SmtpChannel`: the organization's own SMTP server, over the pooled, pipelined
  transport; it also loads and caches the organization's SMTP settings (decrypted), which
  the scheduler needs for connection and rate limits.
- :class:`WebhookChannel`: signed HTTP posts; a webhook never needs the SMTP server.
"""

from __future__ import annotations

import time
import uuid
from typing import Protocol

from visitmail.adapters.crypto.secret_box import SecretBox
from visitmail.domain.errors import VisitmailError
from visitmail.domain.outbox import AttemptOutcome, FailureStage, RecipientResult
from visitmail.domain.smtp_replies import SmtpReply
from visitmail.domain.smtp_settings import SmtpSecrets, SmtpSettings
from visitmail.logs import get_logger
from visitmail.runtime import Runtime
from visitmail.services import smtp_config, webhooks
from visitmail.services.outbox_ports import ClaimedMessage, MessageTransport
from visitmail.services.webhook_ports import WebhookDeliverer

log = get_logger(__name__)

SETTINGS_TTL = 5.0  # seconds a decrypted settings copy is reused before re-reading

Loaded = tuple[SmtpSettings, SmtpSecrets]


class Channel(Protocol):
    """One transport's delivery agent."""

    async def deliver(
        self, message: ClaimedMessage, *, following: ClaimedMessage | None = None
    ) -> AttemptOutcome:
        """One attempt for ``message``; never raises. ``following``: the message this
        caller delivers next through the same channel and organization (a transport may
        prepare it on the same connection); if it is not delivered after all, the caller
        says :meth:`forget`."""
        ...

    def forget(self, message_id: uuid.UUID) -> None:
        """``message_id`` was named as ``following`` but will not be delivered."""
        ...

    def abort(self) -> None:
        """Shutdown ran out of time: end the conversations in progress now. A
        :meth:`deliver` under way returns promptly (a server failure if nothing can have
        reached the far side, the unknown outcome if it may have) or is cancelled."""
        ...

    async def close(self) -> None: ...


class SmtpChannel:
    """Email through the organization's SMTP server. :meth:`settings` must have loaded the
    organization's settings before :meth:`deliver` (the scheduler does it per lane)."""

    def __init__(self, runtime: Runtime, transport: MessageTransport) -> None:
        self.runtime = runtime
        self.transport = transport
        self.box = SecretBox(runtime.keyring)
        self._cache: dict[uuid.UUID, tuple[float, SmtpSettings, SmtpSecrets]] = {}

    def cached(self, organization_id: uuid.UUID) -> SmtpSettings | None:
        """The settings last loaded, however old (for sizing lanes without a query)."""
        found = self._cache.get(organization_id)
        return found[1] if found else None

    def drop(self, organization_id: uuid.UUID) -> None:
        """Read the settings again next time (e.g. before a probe)."""
        self._cache.pop(organization_id, None)

    async def settings(self, organization_id: uuid.UUID) -> Loaded | str:
        """The organization's settings and secrets, re-read at most every
        ``SETTINGS_TTL`` seconds; a string says why there are none usable.

        When the database cannot be read (a restart, a failover), the copy at hand is
        used, however old: settings change rarely and the next read picks a change up.
        Without a copy, the database's error is raised (the caller waits and retries)."""
        cached = self._cache.get(organization_id)
        if cached and time.monotonic() - cached[0] < SETTINGS_TTL:
            return cached[1], cached[2]
        try:
            async with self.runtime.uow() as uow:
                settings, secrets = await smtp_config.load_for_sending(
                    uow, self.box, organization_id
                )
        except VisitmailError as exc:
            return exc.message
        except Exception as exc:
            if cached is None:
                raise
            log.warning(
                "settings read failed; using the copy at hand",
                organization=str(organization_id),
                error=type(exc).__name__,
            )
            return cached[1], cached[2]
        self._cache[organization_id] = (time.monotonic(), settings, secrets)
        return settings, secrets

    async def deliver(
        self, message: ClaimedMessage, *, following: ClaimedMessage | None = None
    ) -> AttemptOutcome:
        try:
            loaded = await self.settings(message.organization_id)
        except Exception as exc:
            # The database, not the SMTP server, is away: a temporary reply for each
            # recipient (retried with backoff), never a failure counted against the server.
            log.warning("settings unreadable", message=str(message.id), error=type(exc).__name__)
            text = "the SMTP settings could not be read (database unavailable); retrying"
            return AttemptOutcome(
                results=[RecipientResult(a, SmtpReply(451, text)) for a in message.open_recipients]
            )
        if isinstance(loaded, str):
            return AttemptOutcome(server_failure=FailureStage.CONNECT, failure_text=loaded)
        settings, secrets = loaded
        try:
            return await self.transport.send(
                message.organization_id, settings, secrets, message, following=following
            )
        except Exception as exc:  # a transport bug must not lose the message
            log.error("transport error", message=str(message.id), error=type(exc).__name__)
            if following is not None:
                self.transport.forget(following.id)
            return AttemptOutcome(
                server_failure=FailureStage.PROTOCOL, failure_text=type(exc).__name__
            )

    def forget(self, message_id: uuid.UUID) -> None:
        self.transport.forget(message_id)

    def abort(self) -> None:
        self.transport.abort()

    async def probe(self, organization_id: uuid.UUID) -> str | None:
        """Connect and authenticate with fresh settings: ``None`` if fine, else why not."""
        self.drop(organization_id)
        loaded = await self.settings(organization_id)
        if isinstance(loaded, str):
            return loaded
        return await self.transport.probe(organization_id, *loaded)

    async def close(self) -> None:
        await self.transport.close()


class WebhookChannel:
    """Webhooks: signed with the secret named by ``meta["secret_ref"]`` and posted. What
    cannot be sent is a per-recipient reply (550 for good, 451 to retry), never a server
    failure: a receiver says nothing about the organization's SMTP server."""

    def __init__(self, runtime: Runtime, deliverer: WebhookDeliverer | None) -> None:
        self.runtime = runtime
        self.deliverer = deliverer  # None: webhook messages fail, saying so
        self.box = SecretBox(runtime.keyring)

    async def deliver(
        self, message: ClaimedMessage, *, following: ClaimedMessage | None = None
    ) -> AttemptOutcome:
        def refused(code: int, text: str) -> AttemptOutcome:
            return AttemptOutcome(
                results=[
                    RecipientResult(address, SmtpReply(code, text))
                    for address in message.open_recipients
                ]
            )

        name = message.meta.get("secret_ref", "")
        if self.deliverer is None:
            return refused(451, "webhook delivery is not configured in this worker")
        if not name:
            return refused(550, "the webhook names no secret (meta.secret_ref)")
        try:
            async with self.runtime.uow() as uow:
                secret = await webhooks.secret_for_delivery(
                    uow, self.box, message.organization_id, name
                )
        except VisitmailError as exc:  # no master key opens it: retry once it is restored
            return refused(451, exc.message)
        except Exception as exc:  # the database may be briefly away
            log.warning("webhook secret lookup failed", error=type(exc).__name__)
            return refused(451, "the webhook secret could not be read; retrying")
        if secret is None:
            return refused(550, f"webhook secret {name} is not defined")
        try:
            return await self.deliverer.deliver(message, secret)
        except Exception as exc:  # a transport bug must not lose the message
            log.error("webhook error", message=str(message.id), error=type(exc).__name__)
            return refused(451, f"webhook delivery error: {type(exc).__name__}")

    def forget(self, message_id: uuid.UUID) -> None:
        return None  # nothing is prepared ahead

    def abort(self) -> None:
        return None  # a post in progress is cancelled (the receiver dedupes on the id)

    async def close(self) -> None:
        if self.deliverer is not None:
            await self.deliverer.close()
