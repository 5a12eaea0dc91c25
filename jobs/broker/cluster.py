"""Redis Cluster: the nodes the settings name, a client built only when first used, and the checks that tell
a cluster from a single Redis.

``JQS_REDIS_URL=redis+cluster://host:port,host:port`` (``rediss+cluster://`` with TLS) or
``JQS_REDIS_CLUSTER=true`` with a plain URL names nodes of one cluster; the client asks them for the others
and for the slots. redis-py's :class:`~redis.cluster.RedisCluster` contacts the nodes in its constructor,
and the workers and the scheduler expect a client whose calls fail while Redis is away and succeed once it
is back, so :class:`LazyCluster` builds it at the first call and again after a call found no node.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.commands.core import Script
from redis.connection import Encoder
from redis.exceptions import RedisClusterException

from zipline_site.parsers import CLUSTER_SCHEMES


@dataclass(frozen=True)
class ClusterTarget:
    """Nodes of one cluster (any of them will do to find the rest), the credentials, TLS, and the setting
    that chose a cluster (for messages)."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None
    tls: bool = False
    setting: str = "JQS_REDIS_URL"

    def describe(self) -> str:
        return "the Redis Cluster at " + ",".join(f"{host}:{port}" for host, port in self.nodes)


def cluster_target(url: str, flag: bool) -> ClusterTarget | None:
    """The cluster that ``url`` (a ``redis+cluster://`` URL) or ``flag`` (``JQS_REDIS_CLUSTER``) with a plain
    URL names; None for a single Redis."""
    if url.startswith(CLUSTER_SCHEMES):
        scheme, rest = url.split("://", 1)
        auth, _, hosts = rest.rpartition("@")
        user, _, password = auth.partition(":")
        nodes = []
        for item in hosts.partition("/")[0].split(","):
            parts = urlsplit(f"redis://{item.strip()}")
            nodes.append((parts.hostname or "localhost", parts.port or 6379))
        tls = scheme == "rediss+cluster"
        return ClusterTarget(tuple(nodes), unquote(user) or None, unquote(password) or None, tls)
    if not flag:
        return None
    parts = urlsplit(url)
    node = ((parts.hostname or "localhost", parts.port or 6379),)
    username, secret = unquote(parts.username or "") or None, unquote(parts.password or "") or None
    return ClusterTarget(node, username, secret, parts.scheme == "rediss", "JQS_REDIS_CLUSTER")


class LazyCluster:
    """A :class:`RedisCluster` made at its first call: while no node answers, each call raises redis-py's
    error (the broker's callers see :class:`~jobs.broker.errors.BrokerUnavailable`) and the next call tries
    again. Attributes are the cluster client's; scripts are registered without contacting Redis."""

    def __init__(self, target: ClusterTarget, **kwargs: Any) -> None:
        self.target = target
        self.kwargs = kwargs
        self._client: RedisCluster | None = None
        self._lock = threading.Lock()

    def connected(self) -> RedisCluster:
        """The cluster client, made now if need be (raises redis-py's error when no node answers)."""
        client = self._client
        if client is None:
            with self._lock:
                client = self._client
                if client is None:
                    client = self._client = self._make()
        return client

    def _make(self) -> RedisCluster:
        t = self.target
        nodes = [ClusterNode(host, port) for host, port in t.nodes]  # type: ignore[no-untyped-call]  # untyped
        try:
            return RedisCluster(startup_nodes=nodes, username=t.username, password=t.password, ssl=t.tls, **self.kwargs)
        except RedisClusterException as exc:  # not a RedisError: the broker's callers catch only those
            raise redis.ConnectionError(f"{t.describe()}: {exc}") from exc

    def like(self, **kwargs: Any) -> LazyCluster:
        """Another lazy client of the same nodes, with ``kwargs`` over these."""
        return LazyCluster(self.target, **{**self.kwargs, **kwargs})

    def get_encoder(self) -> Encoder:
        """What :class:`~redis.commands.core.Script` asks for its SHA: the cluster client's defaults."""
        return Encoder("utf-8", "strict", False)  # type: ignore[no-untyped-call]  # redis.connection is untyped

    def register_script(self, script: str) -> Script:
        return Script(self, script)  # type: ignore[arg-type]  # it calls evalsha and script_load on us

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.connected(), name)


def is_cluster(client: object) -> bool:
    """Whether ``client`` talks to a Redis Cluster."""
    return isinstance(client, RedisCluster | LazyCluster)


def _cluster_enabled(host: str, port: int, target: ClusterTarget | None, url: str | None) -> bool | None:
    """What the node at ``host:port`` says in ``INFO cluster`` (None: it did not answer, or would not say)."""
    if url is not None:
        client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
    else:
        assert target is not None
        client = redis.Redis(
            host=host,
            port=port,
            username=target.username,
            password=target.password,
            ssl=target.tls,
            socket_timeout=1.0,
            socket_connect_timeout=1.0,
        )
    try:
        info = cast(dict[str, Any], client.info("cluster"))
    except redis.RedisError:
        return None
    finally:
        client.close()
    return bool(int(info.get("cluster_enabled", 0)))


def not_a_cluster(target: ClusterTarget) -> str | None:
    """A one-line refusal when a node the settings name answers as a single Redis (``cluster_enabled:0``)."""
    for host, port in target.nodes:
        if _cluster_enabled(host, port, target, None) is False:
            fix = "drop +cluster from the URL" if target.setting == "JQS_REDIS_URL" else "unset it"
            return (
                f"{target.setting}: the Redis at {host}:{port} is not a node of a Redis Cluster "
                f"(cluster_enabled:0): {fix} to use it as a single Redis"
            )
    return None


def a_cluster_node(url: str) -> str | None:
    """A one-line refusal when the single Redis at ``url`` is a node of a cluster (``cluster_enabled:1``)."""
    if not url.startswith(("redis://", "rediss://")) or not _cluster_enabled("", 0, None, url):
        return None
    parts = urlsplit(url)
    return (
        f"JQS_REDIS_URL: the Redis at {parts.hostname}:{parts.port or 6379} is a node of a Redis Cluster "
        f"(cluster_enabled:1): use a redis+cluster:// URL or set JQS_REDIS_CLUSTER=true"
    )
