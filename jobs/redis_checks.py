"""Start-up checks of the Redis that ZipLine dispatches through (fault matrix F13).

With an eviction policy other than ``noeviction``, Redis under memory pressure drops keys to make
room: queued ids, leases, the epoch. The database still holds every job and the reconciler puts
them back, but jobs wait for it, and a running job's lease may vanish under it. With
``noeviction`` a full Redis refuses writes instead: submits still commit and report a deferred
dispatch, workers retry, and the reconciler repairs. So a wrong policy is a warning at start, or a
refusal with ``JQS_REDIS_REQUIRE_NOEVICTION=true``.
"""

from __future__ import annotations

import logging
from typing import cast

import redis
from django.conf import settings

logger = logging.getLogger("zipline.redis")


class RedisPolicyError(RuntimeError):
    """Redis is configured in a way ZipLine was told not to accept; the message says what to change."""


def eviction_problem(client: redis.Redis) -> str | None:
    """A one-line warning when Redis may evict keys; None when it may not, or cannot say.

    Managed services often disable ``CONFIG``, and Redis may not be up yet (the workers and the
    scheduler wait for it and say so); then nothing is known and nothing is said.
    """
    try:
        reply = cast(dict[str, str], client.config_get("maxmemory-policy"))
    except redis.RedisError:
        return None
    policy = reply.get("maxmemory-policy")
    if policy in (None, "noeviction"):
        return None
    return (
        f"Redis maxmemory-policy is {policy!r}: under memory pressure Redis may evict ZipLine's queues "
        f"and leases; set it to 'noeviction'"
    )


def check_eviction_policy(client: redis.Redis) -> None:
    """Log a warning for a policy that may evict; raise :class:`RedisPolicyError` instead in strict mode."""
    problem = eviction_problem(client)
    if problem is None:
        return
    if settings.ZIPLINE.redis_require_noeviction:
        raise RedisPolicyError(f"{problem} (JQS_REDIS_REQUIRE_NOEVICTION=true)")
    logger.warning(problem)
