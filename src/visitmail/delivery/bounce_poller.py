"""The bounce poller: reads each organization's bounce mailbox (``services.bounce_mailbox``)
once every ``POLL_SECONDS``, a few mailboxes per round.

Contract: every ``interval`` it asks the database which enabled mailboxes are due (not
polled for ``POLL_SECONDS`` and not leased by another worker) and polls them one after the
other; a poll's failure is stored on the mailbox and logged, never raised. Workers of several
processes share the work through the poll lease.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from visitmail.adapters.crypto.secret_box import SecretBox
from visitmail.adapters.imap.mailbox import poll_mailbox
from visitmail.domain.bounce_mailbox import POLL_SECONDS
from visitmail.domain.network_policy import NetworkPolicy
from visitmail.logs import get_logger
from visitmail.runtime import Runtime
from visitmail.services import bounce_mailbox
from visitmail.services.bounce_mailbox_ports import MailboxReader
from visitmail.services.oauth_tokens import AccessTokenSource

log = get_logger(__name__)

PER_ROUND = 20


class BouncePoller:
    def __init__(
        self,
        runtime: Runtime,
        policy: NetworkPolicy,
        clock: Callable[[], datetime],
        *,
        tokens: AccessTokenSource | None = None,
        reader: MailboxReader = poll_mailbox,
        every: timedelta = timedelta(seconds=POLL_SECONDS),
    ) -> None:
        self.runtime = runtime
        self.policy = policy
        self.clock = clock
        self.tokens = tokens
        self.reader = reader
        self.every = every
        self.box = SecretBox(runtime.keyring)

    async def run(self, pause: Callable[[float], Awaitable[bool]], interval: float) -> None:
        while await pause(interval):
            try:
                await self.poll_due()
            except Exception as exc:
                log.warning("bounce poll loop error", error=type(exc).__name__)

    async def poll_due(self) -> int:
        """Poll the mailboxes that are due now; how many were polled."""
        now = self.clock()
        async with self.runtime.uow(read_only=True) as uow:
            due = await uow.bounce_mailboxes.due(now, now - self.every, PER_ROUND)
        polled = 0
        for organization_id in due:
            result = await bounce_mailbox.poll_once(
                self.runtime.uow,
                self.box,
                organization_id,
                reader=self.reader,
                policy=self.policy,
                tokens=self.tokens,
                clock=self.clock,
            )
            if result is None:
                continue
            polled += 1
            if result.error is not None:
                log.warning("bounce mailbox failed", organization=str(organization_id))
            elif result.reports:
                log.info(
                    "bounce mailbox read",
                    organization=str(organization_id),
                    reports=result.reports,
                    applied=result.applied,
                    suppressed=len(result.suppressed),
                )
        return polled
