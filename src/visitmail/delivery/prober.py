"""The prober: resumes paused organizations once their SMTP server answers again, and
purges finished messages past their retention.

Contract: every ``probe_interval`` it asks the database which paused organizations are
due for a probe; for each it connects and authenticates with fresh settings. Success
resumes the queue and wakes the claimer; failure schedules the next probe, backing off
from ``first_probe`` to ``max_probe_interval``. Hourly, it purges finished messages older
than ``retention``. Errors are logged, never raised.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from visitmail.delivery.channels import SmtpChannel
from visitmail.logs import get_logger
from visitmail.runtime import Runtime
from visitmail.services.delivery import DeliveryPolicy, next_probe_interval

log = get_logger(__name__)

PURGE_EVERY = 3600.0  # seconds


class Prober:
    def __init__(
        self,
        runtime: Runtime,
        smtp: SmtpChannel,
        policy: DeliveryPolicy,
        clock: Callable[[], datetime],
        on_resume: Callable[[], None],
    ) -> None:
        self.runtime = runtime
        self.smtp = smtp
        self.policy = policy
        self.clock = clock
        self.on_resume = on_resume

    async def run(self, pause: Callable[[float], Awaitable[bool]], interval: float) -> None:
        last_purge = 0.0
        while await pause(interval):
            try:
                await self.probe_once()
                if time.monotonic() - last_purge > PURGE_EVERY:
                    last_purge = time.monotonic()
                    await self.purge()
            except Exception as exc:
                log.warning("probe loop error", error=type(exc).__name__)

    async def purge(self) -> None:
        async with self.runtime.uow() as uow:
            purged = await uow.outbox.purge(self.clock() - self.policy.retention)
            await uow.commit()
        if purged:
            log.info("retention cleanup", purged=purged)

    async def probe_once(self) -> None:
        now = self.clock()
        async with self.runtime.uow() as uow:
            due = await uow.health.due_probes(now)
        for org in due:
            reason = await self.smtp.probe(org)
            async with self.runtime.uow() as uow:
                health = await uow.health.get(org)
                if reason is None:
                    await uow.health.resume(org, self.clock())
                    log.info("queue resumed", organization=str(org))
                else:
                    previous = (
                        health.next_probe_at - health.paused_at
                        if health and health.next_probe_at and health.paused_at
                        else None
                    )
                    interval = next_probe_interval(previous, self.policy)
                    await uow.health.probe_failed(org, reason, self.clock() + interval)
                await uow.commit()
            if reason is None:
                self.on_resume()
