"""The worker registry in Redis: each worker process publishes a heartbeat; readers list live ones.

``{prefix}:workers`` is a ZSET of worker id -> last heartbeat (ms); ``{prefix}:worker:<id>`` a HASH of
the worker's facts, expiring after three heartbeats, so a dead worker disappears by itself.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, cast

from jobs.broker.core import Broker
from jobs.broker.errors import translated

HEARTBEAT_INTERVAL = 2.0
MISSED_BEATS = 3
FIELDS = ("id", "hostname", "pid", "queues", "concurrency", "busy", "processed", "failed", "started_at", "heartbeat_at")


@translated
def publish(broker: Broker, worker_id: str, facts: Mapping[str, Any], interval: float = HEARTBEAT_INTERVAL) -> None:
    """Write this worker's facts and refresh its expiry (three intervals)."""
    now = time.time()
    key = broker.worker_key(worker_id)
    ttl_ms = int(interval * MISSED_BEATS * 1000)
    pipe = broker.client.pipeline(transaction=False)
    pipe.hset(key, mapping={**{k: str(v) for k, v in facts.items()}, "id": worker_id, "heartbeat_at": f"{now:.3f}"})
    pipe.pexpire(key, ttl_ms)
    pipe.zadd(broker.workers_key, {worker_id: int(now * 1000) + ttl_ms})
    pipe.execute()


@translated
def remove(broker: Broker, worker_id: str) -> None:
    """Take a worker out of the registry at once (a clean exit)."""
    pipe = broker.client.pipeline(transaction=False)
    pipe.delete(broker.worker_key(worker_id))
    pipe.zrem(broker.workers_key, worker_id)
    pipe.execute()


@translated
def live_workers(broker: Broker) -> list[dict[str, Any]]:
    """Every worker whose heartbeat is fresh, with its facts typed (ints, floats, a queue list)."""
    now_ms = int(time.time() * 1000)
    broker.client.zremrangebyscore(broker.workers_key, "-inf", now_ms)
    members = cast(list[bytes], broker.client.zrange(broker.workers_key, 0, -1))
    ids = [i.decode() if isinstance(i, bytes) else i for i in members]
    if not ids:
        return []
    pipe = broker.client.pipeline(transaction=False)
    for worker_id in ids:
        pipe.hgetall(broker.worker_key(worker_id))
    workers = []
    for raw in pipe.execute():
        if not raw:
            continue
        facts = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()
        }
        workers.append(_typed(facts))
    return sorted(workers, key=lambda w: (w.get("hostname", ""), w.get("pid", 0)))


def _typed(facts: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = dict(facts)
    for key in ("pid", "concurrency", "busy", "processed", "failed"):
        out[key] = int(facts.get(key, "0") or 0)
    for key in ("started_at", "heartbeat_at"):
        out[key] = float(facts.get(key, "0") or 0)
    out["queues"] = [q for q in facts.get("queues", "").split(",") if q]
    return out
