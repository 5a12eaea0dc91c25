"""Tracks an outage of a dependency (Redis, the database): logged once when it starts, once when it ends."""

from __future__ import annotations

import logging
import time

logger = logging.getLogger("zipline.worker")


class Outage:
    """``failed()`` on every error, ``recovered()`` on every success; only the edges are logged."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.since: float | None = None

    def failed(self, exc: Exception) -> float:
        """Note a failure; returns how long the dependency has been down, in seconds."""
        now = time.monotonic()
        if self.since is None:
            self.since = now
            logger.error("%s unavailable; retrying with backoff", self.name, extra={"error": str(exc)})
        return now - self.since

    def recovered(self) -> None:
        if self.since is not None:
            down = round(time.monotonic() - self.since, 1)
            logger.warning("%s is back", self.name, extra={"down_seconds": down})
            self.since = None
