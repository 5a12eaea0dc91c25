"""Waiting for work on Redis Cluster, where one BLPOP cannot name the queues of several slots.

Every script that leaves a wake-up token for blocked workers (``includes/wake.lua``) also PUBLISHes on the
queue's ``notify`` name. A worker of several queues subscribes to their names once and keeps the
subscription, so a wake-up published while it was claiming waits in its socket: none is lost. After one,
it claims. On a single Redis the BLPOP stays (one round trip, one worker woken per token).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from redis.client import PubSub
from redis.cluster import RedisCluster
from redis.retry import Retry


class WakeListener:
    """One thread's subscription to the wake-ups of its queues."""

    def __init__(self, client: Any, channels: Sequence[str]) -> None:
        self.channels = tuple(channels)
        self.pubsub: PubSub = client.pubsub()  # a RedisCluster's (redis.cluster is untyped)
        self.pubsub.subscribe(*channels)

    def wait(self, timeout: float) -> bool:
        """Block until a wake-up arrives or ``timeout`` passes; drop the others already waiting (one claim
        serves them all). True when woken."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            # None also for a subscription's confirmation, read and skipped before the timeout: wait on.
            if self.pubsub.get_message(ignore_subscribe_messages=True, timeout=remaining) is not None:
                while self.pubsub.get_message(ignore_subscribe_messages=True, timeout=0.0) is not None:
                    pass
                return True
        return False

    def close(self) -> None:
        self.pubsub.close()


def wait_on_cluster(client: Any, waiters: threading.local, notify_keys: Sequence[str], timeout: float) -> None:
    """Wait for work in the queues of ``notify_keys``: BLPOP on one queue's key, or, for several, on the
    thread's Pub/Sub subscription (``waiters`` keeps it between calls). The first call subscribes, then
    waits only if no queue holds a wake-up token: what came before the subscription is claimed at once."""
    if len(notify_keys) == 1:
        client.blpop(list(notify_keys), max(0.001, round(timeout, 3)))
        return
    channels = tuple(notify_keys)
    listener: WakeListener | None = getattr(waiters, "listener", None)
    fresh = listener is None or listener.channels != channels
    try:
        if fresh:
            if listener is not None:
                listener.close()
            listener = waiters.listener = WakeListener(client, channels)
            if any(client.exists(key) for key in notify_keys):  # a wake-up came before the subscription
                return
        assert listener is not None
        listener.wait(timeout)
    except BaseException:
        _drop(waiters)  # its node may be gone (a failover): the next call subscribes again, wherever it can
        raise


def _drop(waiters: threading.local) -> None:
    listener: WakeListener | None = getattr(waiters, "listener", None)
    waiters.listener = None
    if listener is not None:
        try:
            listener.close()
        except Exception:  # noqa: BLE001, S110 - closing a dead connection may fail too; it is dropped anyway
            pass


def cluster_client_like(client: RedisCluster, seconds: float) -> RedisCluster:
    """A cluster client on the same nodes whose commands fail after ``seconds``, without retrying."""
    from redis.backoff import NoBackoff

    node = client.get_default_node()  # type: ignore[no-untyped-call]  # redis.cluster is untyped
    kwargs = dict(client.nodes_manager.connection_kwargs)
    kwargs.update(socket_timeout=seconds, socket_connect_timeout=seconds)
    for name in ("host", "port", "db", "retry", "connection_pool", "redis_connect_func"):
        kwargs.pop(name, None)
    return RedisCluster(host=node.host, port=node.port, retry=Retry(NoBackoff(), 0), **kwargs)
