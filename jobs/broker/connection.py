"""The process's Redis client and broker, built once from the settings (and again after a fork)."""

from __future__ import annotations

import os
import threading
from typing import cast

import redis
from django.conf import settings

from jobs.broker.cluster import ClusterTarget, LazyCluster, cluster_target
from jobs.broker.core import Broker
from jobs.broker.sentinel import SentinelTarget, master_client, parse_sentinels

_lock = threading.Lock()
_state: dict[str, object] = {}


def sentinel_target() -> SentinelTarget | None:
    """The sentinels the settings name (``JQS_REDIS_SENTINELS``), or None for a single Redis at ``REDIS_URL``."""
    section = settings.ZIPLINE.redis
    if not section.sentinels:
        return None
    return SentinelTarget(parse_sentinels(section.sentinels), section.sentinel_master, section.sentinel_password)


def redis_cluster_target() -> ClusterTarget | None:
    """The Redis Cluster the settings name (a ``redis+cluster://`` URL or ``JQS_REDIS_CLUSTER``), or None."""
    return cluster_target(settings.REDIS_URL, settings.ZIPLINE.redis.cluster)


def describe_redis() -> str:
    """The Redis in use, for messages: its URL (password masked), the cluster's nodes, or the sentinels."""
    from jobs.broker.checks import safe_url

    target = sentinel_target() or redis_cluster_target()
    return target.describe() if target else f"Redis at {safe_url(settings.REDIS_URL)}"


def _client(url: str | None, **kwargs: object) -> redis.Redis:
    """A client of ``url``; with sentinels or a cluster configured (and no ``url`` given), of the master the
    sentinels name or of the cluster (made at its first call: :class:`~jobs.broker.cluster.LazyCluster`).

    With sentinels the URL (``REDIS_URL``, built from the parts) gives only the password, user and database.
    """
    cluster = redis_cluster_target() if url is None else None
    if cluster is not None:
        kwargs.pop("health_check_interval", None)
        kwargs.pop("retry_on_error", None)
        return cast(redis.Redis, LazyCluster(cluster, **kwargs))
    target = sentinel_target() if url is None else None
    if target is None:
        return redis.Redis.from_url(url or settings.REDIS_URL, **kwargs)
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(settings.REDIS_URL)
    auth = {"username": unquote(parts.username or "") or None, "password": unquote(parts.password or "") or None}
    database = int(parts.path.strip("/") or 0)
    return master_client(target, db=database, **auth, **kwargs)


def make_client(url: str | None = None, *, socket_timeout: float | None = None) -> redis.Redis:
    """A Redis client with timeouts, health checks and retries on connection errors."""
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    poll = float(settings.ZIPLINE.worker.poll_interval)
    return _client(
        url,
        socket_connect_timeout=2,
        socket_timeout=socket_timeout if socket_timeout is not None else max(5.0, poll + 5.0),
        health_check_interval=15,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=2),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
    )


def get_broker() -> Broker:
    """The shared broker of this process (a new one after ``fork``)."""
    broker = _state.get("broker")
    if broker is None:
        with _lock:
            broker = _state.get("broker")
            if broker is None:
                broker = _state["broker"] = Broker(make_client(), settings.ZIPLINE.redis.key_prefix)
    assert isinstance(broker, Broker)
    return broker


def probe_broker(seconds: float) -> Broker:
    """A broker on the Redis configured now (``REDIS_URL`` is read at each call) whose commands fail
    after ``seconds`` without retrying: for health checks, which must answer quickly and truly."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    name = f"probe:{seconds}:{settings.REDIS_URL}:{sentinel_target()}:{settings.ZIPLINE.redis.cluster}"
    with _lock:
        broker = _state.get(name)
        if broker is None:
            client = _client(None, socket_connect_timeout=seconds, socket_timeout=seconds, retry=Retry(NoBackoff(), 0))
            broker = _state[name] = Broker(client, settings.ZIPLINE.redis.key_prefix)
    assert isinstance(broker, Broker)
    return broker


def cache_client() -> redis.Redis:
    """The Django cache's client on a cluster (:mod:`jobs.broker.cluster_cache`): commands give up after 2 s
    without retrying, as the cache's settings ask of a single Redis."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    with _lock:
        client = _state.get("cache")
        if client is None:
            client = _state["cache"] = _client(
                None, socket_connect_timeout=2, socket_timeout=2, retry=Retry(NoBackoff(), 0)
            )
    return cast(redis.Redis, client)


def reset_broker() -> None:
    """Forget the cached broker and cache client (tests that change settings call this)."""
    with _lock:
        _state.clear()


def _after_fork_in_child() -> None:
    """A forked child must not share the parent's sockets (it builds its own broker when first
    asked), nor inherit the lock held by a thread that the fork left behind."""
    global _lock
    _lock = threading.Lock()
    _state.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)
