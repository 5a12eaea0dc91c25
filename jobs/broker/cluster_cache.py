"""The Django cache (django-redis) on a Redis Cluster: its connections are the process's cluster client.

django-redis builds a plain client per server URL; on a cluster the cache's keys (the shared job counts,
``jobs.queues``) must go to the node that owns their slot, so this factory hands django-redis the same kind of
lazy cluster client the broker uses (:func:`jobs.broker.connection.cache_client`), with the cache's short
timeouts. Selected by ``zipline_site/settings.py`` when the settings name a cluster.
"""

from __future__ import annotations

from typing import Any

from django_redis.pool import ConnectionFactory


class ClusterConnectionFactory(ConnectionFactory):  # type: ignore[misc]  # django-redis is untyped
    """Every cache connection is this process's cluster client; the URL django-redis passes is not used."""

    def connect(self, url: str) -> Any:
        from jobs.broker.connection import cache_client

        return cache_client()

    def disconnect(self, connection: Any) -> None:
        """Kept open: the client is the process's, shared by every cache object and thread."""
