"""The shared rate budget, taken in batches per lane.

Contract: a lane sends an email only with a token from the organization's budget (per
minute / hour / day, shared by every worker through the database). Tokens are reserved
several at a time (one transaction per batch instead of one per message) and kept on the
lane; what the lane does not use when its emails go back to the queue, or when it empties,
is given back through the settler, so the sum sent by all workers never exceeds the
budget and unused reservations do not starve the other workers for long. A refused
reservation blocks the lane's email until the budget refills (one token's time).
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
    return bool(limits.per_minute or limits.per_hour or limits.per_day)


@dataclass
class LaneBudget:
    """The tokens one lane holds."""

    tokens: int = 0
    limits: Limits | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class RateBudget:
    def __init__(self, runtime: Runtime, settler: Settler, clock: Callable[[], datetime]) -> None:
        self.runtime = runtime
        self.settler = settler
        self.clock = clock
        self._blocked_until: dict[uuid.UUID, datetime] = {}

    def take_local(self, budget: LaneBudget, limits: Limits) -> bool:
        """A token without asking the database: unlimited, or one is already reserved."""
        if not limited(limits):
            return True
        if budget.tokens > 0:
            budget.tokens -= 1
            return True
        return False

    def refund(self, budget: LaneBudget, limits: Limits) -> None:
        """A token taken for a message that was not sent after all."""
        if limited(limits):
            budget.tokens += 1

    async def take(
        self, organization_id: uuid.UUID, budget: LaneBudget, limits: Limits, waiting: int
    ) -> datetime | None:
        """One token for the lane's next email: ``None`` when granted, else the time the
        budget allows the next send (the caller gives the lane's email back until then).
        ``waiting``: emails in the lane, to size the reservation."""
        if self.take_local(budget, limits):
            return None
        async with budget.lock:  # one reservation at a time per lane
            if self.take_local(budget, limits):
                return None
            now = self.clock()
            blocked = self._blocked_until.get(organization_id)
            if blocked is not None and blocked > now:
                return blocked
            per_lane = limits.max_connections * RESERVE_PER_CONNECTION
            want = max(1, min(waiting, per_lane, RESERVE_MAX))
            async with self.runtime.uow() as uow:
                granted = await uow.rates.take(organization_id, limits, want, now)
                await uow.commit()
            budget.limits = limits
            if granted:
                budget.tokens += granted - 1
                return None
            wait = 60.0 / limits.per_minute if limits.per_minute else 60.0
            until = now + timedelta(seconds=wait)
            self._blocked_until[organization_id] = until
            return until

    def give_back(self, organization_id: uuid.UUID, budget: LaneBudget) -> None:
        """Return the lane's unused tokens to the shared budget (written by the settler)."""
        if budget.tokens > 0 and budget.limits is not None:
            self.settler.give_back(organization_id, budget.limits, budget.tokens)
        budget.tokens = 0
