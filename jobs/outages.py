"""Tracks an outage of a dependency (Redis, the database): logged once when it starts, once when it ends.

The workers and the scheduler both ride outages out; each says so on its own logger and level.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any


class Outage:
    """``failed()`` on every error, ``recovered()`` on every success; only the edges are logged."""

    def __init__(
        self,
        name: str,
        logger: logging.Logger,
        level: int = logging.ERROR,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.logger = logger
        self.level = level
        self.clock = clock
        self.since: float | None = None

    def failed(self, exc: Exception, **context: Any) -> float:
        """Note a failure; returns how long the dependency has been down, in seconds."""
        now = self.clock()
        if self.since is None:
            self.since = now
            self.logger.log(
                self.level, "%s unavailable; retrying with backoff", self.name, extra={"error": str(exc), **context}
            )
        return now - self.since

    def recovered(self) -> None:
        if self.since is not None:
            down = round(self.clock() - self.since, 1)
            self.logger.warning("%s is back", self.name, extra={"down_seconds": down})
            self.since = None
