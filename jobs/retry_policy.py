"""Retry policies: which delay follows a failed attempt, and whether another attempt is allowed."""

from __future__ import annotations

import random
from dataclasses import dataclass

from jobs.models import Backoff


@dataclass(frozen=True)
class RetryPolicy:
    """``max_retries`` retries after the first attempt; delays grow by ``backoff`` up to ``max_delay``."""

    max_retries: int = 3
    backoff: str = Backoff.EXPONENTIAL
    initial_delay: float = 1.0
    max_delay: float = 3600.0
    jitter: bool = True

    def allows_another(self, attempts_made: int) -> bool:
        """True while the attempts made so far leave at least one more (1 + max_retries in all)."""
        return attempts_made < self.max_retries + 1

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        Exponential doubles from ``initial_delay``, linear adds it, fixed repeats it; the result
        never exceeds ``max_delay``. Jitter draws uniformly from the upper half of that delay
        ("equal jitter"), so retries of many jobs spread out but none waits longer than the cap.
        """
        n = max(1, attempt)
        if self.backoff == Backoff.EXPONENTIAL:
            base = self.initial_delay * (2.0 ** min(n - 1, 64))
        elif self.backoff == Backoff.LINEAR:
            base = self.initial_delay * n
        else:
            base = self.initial_delay
        capped = min(base, self.max_delay)
        if self.jitter and capped > 0:
            return (rng or random).uniform(capped / 2, capped)
        return capped
