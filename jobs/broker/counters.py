"""Counters over a fixed window (``lua/count_window.lua``), for the API's rate limits.

One script changes a counter, so however many threads and processes count at once a limit of N lets
exactly N through. The window starts with the first hit and the key expires with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from jobs.broker.core import Broker
from jobs.broker.errors import translated


@dataclass(frozen=True)
class Count:
    """A counter after a hit: whether the hit was added, the count, and seconds left in its window."""

    added: bool
    count: int
    seconds_left: float

    @property
    def retry_after(self) -> int:
        """Whole seconds until the window ends (at least 1): the ``Retry-After`` of a refusal."""
        return max(1, math.ceil(self.seconds_left))


@translated
def peek(broker: Broker, key: str, at_least: int) -> Count:
    """The counter as it is (0 when absent); the seconds left are read only when it reaches ``at_least``."""
    client: Any = broker.client  # redis-py's stubs mix in the asyncio client's return types
    count = int(client.get(key) or 0)
    left_ms = int(client.pttl(key)) if count >= at_least else 0
    return Count(False, count, max(left_ms, 0) / 1000)


@dataclass(frozen=True)
class Hit:
    """A hit to make: :func:`hit`'s arguments."""

    key: str
    cost: int
    window_ms: int
    limit: int | None

    def args(self) -> tuple[int, int, int]:
        return (self.cost, max(1, self.window_ms), -1 if self.limit is None else self.limit)


@translated
def hit(broker: Broker, key: str, *, cost: int, window_ms: int, limit: int | None) -> Count:
    """Add ``cost`` to the counter ``key`` unless that would pass ``limit`` (None: no limit)."""
    return _count(broker._run("count_window", (key,), Hit(key, cost, window_ms, limit).args()))


def _count(reply: Any) -> Count:
    added, count, left_ms = reply
    return Count(bool(added), int(count), int(left_ms) / 1000)


@translated
def peek_along(
    broker: Broker, key: str, at_least: int, other: str, also: Hit | None = None
) -> tuple[Count, Any, Count | None]:
    """:func:`peek`, the value of the key ``other`` (a GET) and, if ``also`` is given, that hit made, in one
    round trip (a pipeline, not a transaction): the count, the value, and the hit's count or None."""
    calls = [] if also is None else [("count_window", (also.key,), also.args())]
    reads: list[Any] = []
    scripts = broker._run_many(calls, [("get", (key,)), ("get", (other,))], reads)  # the package's own runner
    count = int(reads[0] or 0)
    left_ms = int(broker.client.pttl(key)) if count >= at_least else 0  # type: ignore[arg-type]
    return Count(False, count, max(left_ms, 0) / 1000), reads[1], _count(scripts[0]) if scripts else None
