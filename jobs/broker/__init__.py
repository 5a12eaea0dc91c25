"""Redis behind one package: its keys, Lua scripts, connection, health checks and the broker.

Callers import the broker, its values and its error from here (``from jobs.broker import Broker,
get_broker``), and the registry, locks, counters and start-up checks from their modules
(``jobs.broker.heartbeat``, ``.locks``, ``.counters``, ``.checks``). Nothing outside the package
touches a Redis client or catches redis-py's errors (``tests/test_broker_boundary.py``).
"""

from jobs.broker.connection import get_broker, make_client, probe_broker, reset_broker
from jobs.broker.core import Broker
from jobs.broker.errors import BrokerUnavailable
from jobs.broker.items import Claim, ExpiredLease, Promoted, PushItem, RestoreItem, Settlement
from jobs.broker.keys import QueueKeys
from jobs.clock import due_score

__all__ = [
    "Broker",
    "BrokerUnavailable",
    "Claim",
    "ExpiredLease",
    "Promoted",
    "PushItem",
    "QueueKeys",
    "RestoreItem",
    "Settlement",
    "due_score",
    "get_broker",
    "make_client",
    "probe_broker",
    "reset_broker",
]
