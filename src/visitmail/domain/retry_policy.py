"""When to try again: exponential backoff with jitter, bounded by the message's maximum age.

Pure: the caller hands in the attempt number, the clock and a random source.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base: timedelta = timedelta(seconds=30)
    factor: float = 2.0
    cap: timedelta = timedelta(minutes=30)
    jitter: float = 0.2  # ±20 %, so retries of one burst do not arrive together
    max_age: timedelta = timedelta(hours=48)

    def delay(self, attempt: int, rng: random.Random | None = None) -> timedelta:
        """Backoff before retry number ``attempt`` (1 = the first retry)."""
        raw = self.base.total_seconds() * self.factor ** max(0, attempt - 1)
        bounded = min(raw, self.cap.total_seconds())
        spread = (rng or random).uniform(1 - self.jitter, 1 + self.jitter)
        return timedelta(seconds=bounded * spread)

    def next_try(
        self, *, attempt: int, created_at: datetime, now: datetime, rng: random.Random | None = None
    ) -> datetime | None:
        """When to try again, or ``None`` if that would pass the maximum age (expire)."""
        when = now + self.delay(attempt, rng)
        if when > created_at + self.max_age:
            return None
        return when
