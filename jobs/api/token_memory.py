"""Which verified API tokens a process may go on trusting without asking the database again.

Verifying a token is a query; every API request needs one, and submissions are the hot path, so each
process remembers the tokens it verified. A revoked token must still be refused at once by every
process, so the memory is tied to a *generation* kept in Redis (``<prefix>:auth:generation``):

- any change to a token or a user sets a new random generation once that change commits;
- a remembered token counts only under the generation current when it was verified, read *before*
  its query, so a change committing during the query already makes the answer stale;
- a random value, not a counter, so a Redis that lost its data (and the key) cannot bring an old
  generation back;
- without Redis nothing is remembered: every request asks the database (Redis is not asked again
  for :data:`REDIS_PAUSE` seconds, so an outage does not slow every request).

Checking costs one Redis GET per request instead of a database query, and not even a round trip of its
own: it is read in the pipeline that reads the client's failed-login counter (:mod:`jobs.auth_failures`). Entries also expire after
:data:`MAX_AGE` seconds, which bounds the damage if telling the other processes ever fails.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.db import transaction

from jobs.broker import BrokerUnavailable, auth_generation, get_broker
from jobs.broker.keys import auth_generation_key

logger = logging.getLogger("zipline.api")

MAX_AGE = 5.0
MAX_ENTRIES = 10_000
REDIS_PAUSE = 1.0

_lock = threading.Lock()
_entries: dict[str, tuple[float, str, Any, Any]] = {}  # key digest -> (expires, generation, user, token)
_redis_down: tuple[object, float] = (None, 0.0)  # the broker that failed, and until when not to ask it


def generation_key() -> str:
    """The Redis key of the generation (read along with the failed-login counter: :mod:`jobs.auth_failures`)."""
    return auth_generation_key(get_broker().prefix)


def generation_read(read: bool, value: Any) -> str | None:
    """The generation from a read of :func:`generation_key` made elsewhere (``read`` False: Redis could not
    be reached); made here if Redis has none yet."""
    global _redis_down
    if not read:
        _redis_down = (get_broker(), time.monotonic() + REDIS_PAUSE)
        return None
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, str):
        return value
    return current_generation()


def current_generation() -> str | None:
    """The generation now (made if Redis has none); None when Redis cannot say, and nothing may be trusted."""
    global _redis_down
    broker = get_broker()
    if _redis_down[0] is broker and time.monotonic() < _redis_down[1]:
        return None
    try:
        return auth_generation.current(broker)
    except BrokerUnavailable:
        _redis_down = (broker, time.monotonic() + REDIS_PAUSE)
        return None


def recall(key: str, generation: str) -> tuple[Any, Any] | None:
    """The user and token verified for ``key`` (a key's digest) under ``generation``, if it is still fresh."""
    entry = _entries.get(key)
    if entry is None or entry[1] != generation or entry[0] <= time.monotonic():
        return None
    return entry[2], entry[3]


def likely_user(key: str) -> Any:
    """The user a still-fresh entry for ``key`` names, whatever its generation: a guess, made before the
    generation is read, that the check of the token (:func:`recall`) confirms or not."""
    entry = _entries.get(key)
    return entry[2] if entry is not None and entry[0] > time.monotonic() else None


def remember(key: str, generation: str, user: Any, token: Any) -> None:
    with _lock:
        if len(_entries) >= MAX_ENTRIES:
            _entries.clear()
        _entries[key] = (time.monotonic() + MAX_AGE, generation, user, token)


def forget_all(*args: Any, **kwargs: Any) -> None:
    """A token or a user changed: forget here now, and tell every process once the change commits."""
    with _lock:
        _entries.clear()
    transaction.on_commit(_new_generation)


def _new_generation() -> None:
    try:
        auth_generation.replace(get_broker())
    except BrokerUnavailable as exc:
        logger.warning(
            "could not tell other API processes that a token or user changed; they may accept "
            "its old token for up to %.0f s",
            MAX_AGE,
            extra={"error": str(exc)},
        )
