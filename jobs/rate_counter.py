"""Counters over a fixed window in Redis, changed by one Lua script (``lua/count_window.lua``): atomic
however many threads and processes count at once, so a limit of N lets exactly N through.

Used by the API's rate limits (:mod:`jobs.api.throttling`) and by the failed-authentication limit
(:mod:`jobs.auth_failures`). The window starts with the first hit and the key expires with it.

Redis out of reach is not an error here: the callers let requests through (a limit must not take the
API down with Redis, which the API does not otherwise need to accept a job). The outage is logged once.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from redis.commands.core import Script

from jobs.broker import Broker, get_broker
from jobs.broker.scripts import source
from jobs.outages import Outage

logger = logging.getLogger("zipline.api")

#: Seconds a rate-limit command may take before the request goes on without it.
REDIS_TIMEOUT = 0.5

_outage = Outage("Redis (rate limits: requests pass meanwhile)", logger, logging.WARNING)
_lock = threading.Lock()
_state: dict[str, object] = {}


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


def _broker_and_script() -> tuple[Broker, Script]:
    """A broker on the configured Redis whose commands give up after :data:`REDIS_TIMEOUT`."""
    shared = get_broker()
    with _lock:
        if _state.get("shared") is not shared:
            built = shared.with_socket_timeout(REDIS_TIMEOUT)
            _state.update(shared=shared, quick=built, script=built.client.register_script(source("count_window")))
        quick, script = _state["quick"], _state["script"]
    assert isinstance(quick, Broker) and isinstance(script, Script)
    return quick, script


def key(*parts: str) -> str:
    """The Redis key of a counter: under ``JQS_REDIS_KEY_PREFIX``, then ``rate:`` and the parts."""
    return ":".join((settings.ZIPLINE.redis.key_prefix, "rate", *parts))


def hit(name: str, window: float, *, limit: int | None = None, cost: int = 1) -> Count | None:
    """Add ``cost`` to the counter ``name`` (a :func:`key`) unless that would pass ``limit``.

    ``window`` is in seconds. None when Redis cannot be reached.
    """
    if cost < 1:
        raise ValueError("cost must be at least 1")
    broker, script = _broker_and_script()
    try:
        added, count, left_ms = script(
            keys=[name], args=[cost, max(1, int(window * 1000)), -1 if limit is None else limit], client=broker.client
        )
    except (redis.RedisError, OSError) as exc:
        _outage.failed(exc)
        return None
    _outage.recovered()
    return Count(bool(added), int(count), int(left_ms) / 1000)


def peek(name: str, at_least: int = 1) -> Count | None:
    """The counter ``name`` as it is (0 when absent), without adding to it; None when Redis cannot be reached.

    The seconds left in its window are read only when the count reaches ``at_least`` (a second round
    trip, for a refusal's ``Retry-After``): the common answer, "under the limit", costs one GET.
    """
    broker, _script = _broker_and_script()
    client: Any = broker.client  # redis-py's stubs mix in the asyncio client's return types
    try:
        count = int(client.get(name) or 0)
        left_ms = int(client.pttl(name)) if count >= at_least else 0
    except (redis.RedisError, OSError) as exc:
        _outage.failed(exc)
        return None
    _outage.recovered()
    return Count(False, count, max(left_ms, 0) / 1000)
