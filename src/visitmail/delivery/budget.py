"""The shared rate budget, taken in batches per lane.

Contract: a lane sends an email only with a token from the organization's budget (per
minute / hour / day, shared by every worker through the database) and, under
``recipients_per_day``, as many recipient units as the email has open recipients (a
message to 3 recipients costs 3; never more than the whole day's budget). Tokens are reserved
several at a time (one transaction per batch instead of one per message) and kept on the
lane; what the lane does not use when its emails go back to the queue, or when it empties,
is given back through the settler, so the sum sent by all workers never exceeds the
budget and unused reservations do not starve the other workers for long. A refused
reservation blocks the lane's email until the budget refills: one token's time for
messages, the end of the day window for recipients (the email is deferred, not failed).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from visitmail.delivery.settler import Settler
from visitmail.domain.smtp_settings import Limits
from visitmail.runtime import Runtime

RESERVE_PER_CONNECTION = 4  # tokens reserved at once per allowed connection
RESERVE_MAX = 64


def limited(limits: Limits) -> bool:
    return limits.budgeted


@dataclass
class LaneBudget:
    """What one lane holds: message tokens and recipient units."""

    tokens: int = 0
    recipients: int = 0
    limits: Limits | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class RateBudget:
    def __init__(self, runtime: Runtime, settler: Settler, clock: Callable[[], datetime]) -> None:
        self.runtime = runtime
        self.settler = settler
        self.clock = clock
        self._blocked_until: dict[uuid.UUID, datetime] = {}

    def take_local(self, budget: LaneBudget, limits: Limits, recipients: int = 1) -> bool:
        """What an email to ``recipients`` addresses needs, without asking the database:
        nothing (unlimited), or a message token and its recipient units already reserved."""
        if not limited(limits):
            return True
        cost = limits.recipient_cost(recipients)
        if limits.counts_messages and budget.tokens <= 0:
            return False
        if budget.recipients < cost:
            return False
        if limits.counts_messages:
            budget.tokens -= 1
        budget.recipients -= cost
        return True

    def refund(self, budget: LaneBudget, limits: Limits, recipients: int = 1) -> None:
        """What was taken for an email to ``recipients`` addresses that was not sent."""
        if limits.counts_messages:
            budget.tokens += 1
        budget.recipients += limits.recipient_cost(recipients)

    async def take(
        self,
        organization_id: uuid.UUID,
        budget: LaneBudget,
        limits: Limits,
        waiting: int,
        recipients: int = 1,
        waiting_recipients: int = 0,
    ) -> datetime | None:
        """What the lane's next email (to ``recipients`` addresses) needs: ``None`` when
        granted, else the time the budget allows it (the caller gives the lane's email
        back until then): one token's time for messages, the day window's end for
        recipients. ``waiting`` / ``waiting_recipients``: emails and their recipients in
        the lane, to size the reservation."""
        if self.take_local(budget, limits, recipients):
            return None
        async with budget.lock:  # one reservation at a time per lane
            if self.take_local(budget, limits, recipients):
                return None
            now = self.clock()
            blocked = self._blocked_until.get(organization_id)
            if blocked is not None and blocked > now:
                return blocked
            until = await self._reserve(
                organization_id, budget, limits, now, waiting, recipients, waiting_recipients
            )
            budget.limits = limits
            if until is None and self.take_local(budget, limits, recipients):
                return None
            until = until or now + timedelta(seconds=60)
            self._blocked_until[organization_id] = until
            return until

    async def _reserve(
        self,
        organization_id: uuid.UUID,
        budget: LaneBudget,
        limits: Limits,
        now: datetime,
        waiting: int,
        recipients: int,
        waiting_recipients: int,
    ) -> datetime | None:
        """Reserve what is missing in one transaction; the time to wait for, if short."""
        cost = limits.recipient_cost(recipients)
        async with self.runtime.uow() as uow:
            until: datetime | None = None
            if limits.counts_messages and budget.tokens <= 0:
                per_lane = limits.max_connections * RESERVE_PER_CONNECTION
                want = max(1, min(waiting, per_lane, RESERVE_MAX))
                granted = await uow.rates.take(organization_id, limits, want, now)
                budget.tokens += granted
                if not granted:
                    wait = 60.0 / limits.per_minute if limits.per_minute else 60.0
                    until = now + timedelta(seconds=wait)
            if until is None and budget.recipients < cost:
                bounded = min(waiting_recipients, RESERVE_MAX * 2)
                want_r = max(cost - budget.recipients, bounded - budget.recipients)
                grant = await uow.rates.take_recipients(organization_id, limits, want_r, now)
                budget.recipients += grant.granted
                if budget.recipients < cost:
                    until = grant.refill_at
            await uow.commit()
        return until

    def give_back(self, organization_id: uuid.UUID, budget: LaneBudget) -> None:
        """Return the lane's unused tokens and recipient units to the shared budget
        (written by the settler)."""
        if (budget.tokens > 0 or budget.recipients > 0) and budget.limits is not None:
            self.settler.give_back(organization_id, budget.limits, budget.tokens, budget.recipients)
        budget.tokens = 0
        budget.recipients = 0
