"""Counters over a fixed window in Redis, changed by one Lua script (:mod:`jobs.broker.counters`): atomic
however many threads and processes count at once, so a limit of N lets exactly N through.

Used by the API's rate limits (:mod:`jobs.api.throttling`) and by the failed-authentication limit
(:mod:`jobs.auth_failures`). The window starts with the first hit and the key expires with it.

Redis out of reach is not an error here: the callers let requests through (a limit must not take the
API down with Redis, which the API does not otherwise need to accept a job). The outage is logged once.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.conf import settings

from jobs.broker import Broker, BrokerUnavailable, counters, get_broker
from jobs.broker.counters import Count, Hit
from jobs.broker.keys import rate_key
from jobs.outages import Outage
from zipline_site.setting_values import read_once

# JQS_REDIS_KEY_PREFIX, read at every counter a request touches (zipline_site.setting_values).
_key_prefix = read_once(lambda: str(settings.ZIPLINE.redis.key_prefix))

logger = logging.getLogger("zipline.api")

#: Seconds a rate-limit command may take before the request goes on without it.
REDIS_TIMEOUT = 0.5

_outage = Outage("Redis (rate limits: requests pass meanwhile)", logger, logging.WARNING)
_lock = threading.Lock()
_state: dict[str, Broker] = {}

__all__ = ["Count", "Hit", "hit", "keep_counted", "key", "peek", "peek_along", "take_counted"]


def _quick_broker() -> Broker:
    """A broker on the configured Redis whose commands give up after :data:`REDIS_TIMEOUT`."""
    shared = get_broker()
    with _lock:
        if _state.get("shared") is not shared:
            _state.update(shared=shared, quick=shared.with_socket_timeout(REDIS_TIMEOUT))
        return _state["quick"]


def key(*parts: str) -> str:
    """The Redis key of a counter: under ``JQS_REDIS_KEY_PREFIX``, then ``rate:`` and the parts."""
    return rate_key(_key_prefix(), *parts)


def hit(name: str, window: float, *, limit: int | None = None, cost: int = 1) -> Count | None:
    """Add ``cost`` to the counter ``name`` (a :func:`key`) unless that would pass ``limit``.

    ``window`` is in seconds. None when Redis cannot be reached.
    """
    if cost < 1:
        raise ValueError("cost must be at least 1")
    try:
        count = counters.hit(_quick_broker(), name, cost=cost, window_ms=int(window * 1000), limit=limit)
    except BrokerUnavailable as exc:
        _outage.failed(exc)
        return None
    _outage.recovered()
    return count


def peek(name: str, at_least: int = 1) -> Count | None:
    """The counter ``name`` as it is (0 when absent), without adding to it; None when Redis cannot be reached.

    The seconds left in its window are read only when the count reaches ``at_least`` (a second round
    trip, for a refusal's ``Retry-After``): the common answer, "under the limit", costs one GET.
    """
    try:
        count = counters.peek(_quick_broker(), name, at_least)
    except BrokerUnavailable as exc:
        _outage.failed(exc)
        return None
    _outage.recovered()
    return count


def peek_along(
    name: str, other: str, at_least: int = 1, also: Hit | None = None
) -> tuple[Count | None, Any, Count | None]:
    """:func:`peek`, the value of the Redis key ``other`` and, if given, the hit ``also``, in one round trip:
    (None, None, None) when Redis cannot be reached. For a caller that reads a key of its own on every
    request anyway; the hit's count is kept for :func:`take_counted`."""
    try:
        count, value, counted = counters.peek_along(_quick_broker(), name, at_least, other, also)
    except BrokerUnavailable as exc:
        _outage.failed(exc)
        return None, None, None
    _outage.recovered()
    return count, value, counted


_COUNTED = "_zipline_counted"  # on a request: the hits made for it ahead of its throttle, by counter key


def keep_counted(request: Any, made: Hit, count: Count) -> None:
    """Keep on ``request`` a hit made for it ahead of time (along with another round trip)."""
    request.__dict__.setdefault(_COUNTED, {})[made.key] = count


def take_counted(request: Any, name: str) -> Count | None:
    """The count of the hit on counter ``name`` made for ``request`` ahead of time, once; None if none was."""
    counted: dict[str, Count] = request.__dict__.get(_COUNTED, {})
    return counted.pop(name, None)
