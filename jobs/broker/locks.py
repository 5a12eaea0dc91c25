"""Short Redis locks that keep several schedulers from doing the same expensive work twice.

There is no leader. Correctness never depends on these locks: promotion and reclaim are atomic Lua
moves, every status change is a conditional UPDATE, the restore script never duplicates an entry, and
a cron fire is unique in the database. A lock only spares the database duplicate scans (a rebuild, a
reconcile pass, a retention pass). If its holder dies, the lock expires and another scheduler carries
on; if Redis is down, callers that can work without Redis go ahead unlocked.
"""

from __future__ import annotations

from jobs.broker.core import Broker
from jobs.broker.errors import translated, translated_methods
from jobs.broker.keys import lock_key

_REFRESH = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


@translated_methods
class Lock:
    """``SET key owner NX PX ttl``; refreshed and released only by its owner (compare in Lua)."""

    def __init__(self, broker: Broker, name: str, owner: str, ttl: float) -> None:
        self.client, self.key, self.owner = broker.client, lock_key(broker.prefix, name), owner
        self.ttl_ms = max(1, int(ttl * 1000))

    def acquire(self) -> bool:
        return bool(self.client.set(self.key, self.owner, nx=True, px=self.ttl_ms))

    def refresh(self) -> bool:
        """Extend the lock; False when it is no longer ours (expired, or Redis lost its data)."""
        return bool(self.client.eval(_REFRESH, 1, self.key, self.owner, self.ttl_ms))

    def held(self) -> bool:
        value = self.client.get(self.key)
        return value is not None and (value.decode() if isinstance(value, bytes) else value) == self.owner

    def release(self) -> None:
        self.client.eval(_RELEASE, 1, self.key, self.owner)


@translated
def once_per_interval(broker: Broker, name: str, owner: str, interval: float) -> bool:
    """True for one caller per ``interval`` across all schedulers (the key is left to expire)."""
    key = lock_key(broker.prefix, name)
    return bool(broker.client.set(key, owner, nx=True, px=max(1, int(interval * 1000))))
