"""Redis through Sentinel: the master is asked of the sentinels, and a failover is followed without a restart.

redis-py's ``SentinelConnectionPool`` asks the sentinels for the master's address before each new
connection and drops a connection whose server turned read-only (a demoted master). The broker's calls
then fail once with :class:`~jobs.broker.errors.BrokerUnavailable`, which every caller already rides
out, and the next connection goes to the new master. This module adds one log line per process when the
master changes, and the checks that tell an unknown master name from sentinels out of reach.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any, cast

import redis
from redis.sentinel import Sentinel, SentinelConnectionPool, SentinelConnectionPoolProxy

logger = logging.getLogger("zipline.redis")

_seen_lock = threading.Lock()
_seen: dict[tuple[tuple[str, ...], str], tuple[str, int]] = {}  # (sentinels, master) -> the address last used


@dataclass(frozen=True)
class SentinelTarget:
    """Where the master is found: the sentinels' addresses, the master's name, the sentinels' password."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    password: str = ""

    def describe(self) -> str:
        addresses = ",".join(f"{host}:{port}" for host, port in self.sentinels)
        return f"the master {self.master!r} of the sentinels at {addresses}"


def parse_sentinels(text: str) -> tuple[tuple[str, int], ...]:
    """``host:port,host:port`` (already checked by the configuration) as address pairs."""
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        host, _, port = item.rpartition(":")
        pairs.append((host.strip("[]"), int(port)))
    return tuple(pairs)


def _note_master(sentinels: tuple[str, ...], name: str, address: tuple[str, int]) -> None:
    """Log a master this process has not used before, once (every pool of the process shares this)."""
    with _seen_lock:
        before = _seen.get((sentinels, name))
        if before == address:
            return
        _seen[sentinels, name] = address
    host, port = address
    if before is None:
        logger.info("redis master found through sentinel", extra={"master": name, "address": f"{host}:{port}"})
    else:
        logger.warning(
            "redis master changed (failover followed)",
            extra={
                "master": name,
                "address": f"{host}:{port}",
                "previous": f"{before[0]}:{before[1]}",
                "pid": os.getpid(),
            },
        )


def _addresses(manager: Sentinel) -> tuple[str, ...]:
    """The sentinels' ``host:port``, sorted: the same for every pool of the process that asks them.

    Not the clients themselves: redis-py moves the sentinel that answered to the front of its list, and a
    client's text names objects of its own, so either would make a failover look like a first sighting.
    """
    kwargs = (sentinel.connection_pool.connection_kwargs for sentinel in manager.sentinels)
    return tuple(sorted(f"{each.get('host')}:{each.get('port')}" for each in kwargs))


class _Proxy(SentinelConnectionPoolProxy):
    @functools.cached_property
    def sentinel_addresses(self) -> tuple[str, ...]:
        return _addresses(self.sentinel_manager)

    def get_master_address(self) -> Any:
        address = super().get_master_address()  # type: ignore[no-untyped-call]  # redis.sentinel is untyped
        _note_master(self.sentinel_addresses, self.service_name, tuple(address))
        return address


class FollowingPool(SentinelConnectionPool):
    """A sentinel pool whose connections report the master they find (see :func:`_note_master`)."""

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        super().__init__(service_name, sentinel_manager, **kwargs)  # type: ignore[no-untyped-call]  # untyped
        self.proxy = _Proxy(  # type: ignore[no-untyped-call]
            connection_pool=self,
            is_master=self.is_master,
            check_connection=self.check_connection,
            service_name=service_name,
            sentinel_manager=sentinel_manager,
        )
        self.connection_kwargs["connection_pool"] = self.proxy


def master_client(target: SentinelTarget, **connection_kwargs: Any) -> redis.Redis:
    """A client of the master ``target`` names; ``connection_kwargs`` as for ``redis.Redis``."""
    sentinel_kwargs: dict[str, Any] = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0}
    if target.password:
        sentinel_kwargs["password"] = target.password
    # redis.sentinel has no annotations: its calls are checked by the tests against real sentinels
    manager = Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
    client = manager.master_for(  # type: ignore[no-untyped-call]
        target.master, connection_pool_class=FollowingPool, **connection_kwargs
    )
    return cast(redis.Redis, client)


def master_address(client: redis.Redis) -> str | None:
    """``host:port`` of the master a sentinel client uses now (asking the sentinels); None for a plain client."""
    pool = client.connection_pool
    if not isinstance(pool, SentinelConnectionPool):
        return None
    host, port = pool.get_master_address()  # type: ignore[no-untyped-call]
    return f"{host}:{port}"


def unknown_master(target: SentinelTarget) -> str | None:
    """A one-line refusal when a sentinel answers but knows no master of that name; None otherwise
    (known, or no sentinel answers: then the master is waited for like any Redis out of reach)."""
    for host, port in target.sentinels:
        client = redis.Redis(
            host=host, port=port, password=target.password or None, socket_timeout=1.0, socket_connect_timeout=1.0
        )
        try:
            masters = client.sentinel_masters()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        except redis.RedisError:
            continue
        finally:
            client.close()
        if target.master in masters:
            return None
        known = ", ".join(sorted(masters)) or "none"
        return (
            f"JQS_REDIS_SENTINEL_MASTER={target.master!r}: the sentinel at {host}:{port} monitors no master "
            f"of that name (it knows: {known})"
        )
    return None
