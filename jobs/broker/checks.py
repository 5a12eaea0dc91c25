"""Start-up checks of the Redis that ZipLine dispatches through: it lets us in, and keeps our keys (F13).

A Redis that answers but refuses ZipLine (a database number it does not have, a wrong password or
user) is a configuration mistake, not an outage: waiting would not mend it, so the services refuse to
start and say so in one line. A Redis out of reach is waited for.

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

from jobs.broker.core import Broker
from jobs.broker.errors import BrokerUnavailable

logger = logging.getLogger("zipline.redis")


class RedisPolicyError(RuntimeError):
    """Redis is configured in a way ZipLine was told not to accept; the message says what to change."""


def eviction_problem(broker: Broker) -> str | None:
    """A one-line warning when Redis may evict keys; None when it may not, or cannot say.

    Managed services often disable ``CONFIG``, and Redis may not be up yet (the workers and the
    scheduler wait for it and say so); then nothing is known and nothing is said.
    """
    try:
        reply = cast(dict[str, str], broker.client.config_get("maxmemory-policy"))
    except redis.RedisError:
        return None
    policy = reply.get("maxmemory-policy")
    if policy in (None, "noeviction"):
        return None
    return (
        f"Redis maxmemory-policy is {policy!r}: under memory pressure Redis may evict ZipLine's queues "
        f"and leases; set it to 'noeviction'"
    )


def check_eviction_policy(broker: Broker, *, require_noeviction: bool) -> None:
    """Log a warning for a policy that may evict; raise :class:`RedisPolicyError` instead in strict mode."""
    problem = eviction_problem(broker)
    if problem is None:
        return
    if require_noeviction:
        raise RedisPolicyError(f"{problem} (JQS_REDIS_REQUIRE_NOEVICTION=true)")
    logger.warning(problem)


def safe_url(url: str) -> str:
    """``url`` with its password masked, for messages."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _where(url: str) -> str:
    """Where Redis was looked for: the sentinels and master name, or the cluster's nodes, else the URL."""
    from jobs.broker.connection import redis_cluster_target, sentinel_target

    target = sentinel_target() or redis_cluster_target()
    return target.describe() if target else f"Redis at {safe_url(url)}"


def unreachable(broker: Broker, url: str) -> str | None:
    """None when Redis answers; otherwise a one-line reason naming where it was looked for (password masked)."""
    try:
        broker.ping()
    except BrokerUnavailable as exc:
        return f"cannot reach {_where(url)}: {exc}"
    return None


def wrong_kind(url: str) -> str | None:
    """A one-line refusal when the settings and the Redis disagree about a cluster: a cluster configured and a
    node answering as a single Redis, or a single Redis configured and a node of a cluster answering."""
    from jobs.broker.cluster import a_cluster_node, not_a_cluster
    from jobs.broker.connection import redis_cluster_target, sentinel_target

    cluster = redis_cluster_target()
    if cluster is not None:
        return not_a_cluster(cluster)
    return None if sentinel_target() else a_cluster_node(url)


def refusal(broker: Broker, url: str) -> str | None:
    """A one-line reason when Redis answers but will not serve ZipLine; None when it does, or is out of reach.

    Through Sentinel, sentinels that answer but know no master of the configured name are a refusal too; so is
    a cluster where the settings name a single Redis, or the other way round.
    """
    from jobs.broker.connection import sentinel_target
    from jobs.broker.sentinel import unknown_master

    target = sentinel_target()
    problem = (unknown_master(target) if target else None) or wrong_kind(url)
    if problem:
        return problem
    try:
        broker.client.ping()  # the raw client: its error says whether Redis refused or is away
    except (redis.AuthenticationError, redis.exceptions.AuthorizationError, redis.ResponseError) as exc:
        return f"{_where(url)} refuses ZipLine: {exc} (check JQS_REDIS_URL)"
    except redis.RedisError:
        return None
    return None
