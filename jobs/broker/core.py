"""The Redis dispatch layer: per-queue sorted sets of ready, delayed and leased job ids.

This class is the only place that assembles script arguments (keys come from ``jobs.broker.keys``). Every multi-key step
is one Lua script (see ``jobs/broker/lua``). All keys of one queue share the hash tag ``{queue}``, so each
script touches one hash slot, and every key starts with the configured prefix.

On Redis Cluster (``redis+cluster://`` or ``JQS_REDIS_CLUSTER``, :mod:`jobs.broker.cluster`) the broker runs on
``redis.cluster.RedisCluster``: each queue's keys lie in the slot of its tag, so queues
spread over the masters. What spans queues changes there: a cluster refuses EVALSHA in a pipeline and a BLPOP
across slots, so scripts run one call each, and a worker that waits on several queues listens to their
wake-ups on one Pub/Sub connection instead (:mod:`jobs.broker.waiting`).

Key layout, for prefix ``zipline`` and queue ``default``:

- ``zipline:{default}:ready``    ZSET id -> (100 - priority) * 2^44 + sequence
- ``zipline:{default}:delayed``  ZSET id -> due time (ms)      ``...:prio`` HASH id -> priority
- ``zipline:{default}:leases``   ZSET id -> lease deadline (ms) ``...:tokens`` HASH id -> owning worker id (``KeySet.owners``)
- ``zipline:{default}:notify``   LIST wake-up signal for blocked workers
- ``zipline:{default}:paused``   STRING while paused ``...:seq`` STRING FIFO counter
- ``zipline:{default}:completed:<minute>`` / ``...:failed:<minute>`` counters for throughput charts
- ``zipline:queues`` SET of queue names; ``zipline:epoch`` marker whose absence means Redis lost its data
- ``zipline:auth:generation`` STRING the API processes' token memory (``jobs.api.token_memory``)
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, cast

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.retry import Retry
from redis.sentinel import SentinelConnectionPool

from jobs.broker.cluster import LazyCluster, is_cluster
from jobs.broker.endings import EndingsMixin
from jobs.broker.errors import translated_methods
from jobs.broker.flow import FlowReads
from jobs.broker.items import NO_LIMITS, Claim, ExpiredLease, FlowLimits, Promoted, PushItem, RestoreItem, Settlement
from jobs.broker.keys import QueueKeys, epoch_key, queue_keys, queues_key, worker_key, workers_key
from jobs.broker.scripts import SCRIPT_NAMES, source
from jobs.broker.waiting import cluster_client_like, wait_on_cluster
from jobs.clock import Clock, RedisClock

STATS_TTL_SECONDS = 2 * 3600
KEYS_CACHE_MAX = 10_000


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _due(next_due: int) -> int | None:
    """A script's next due time: -1 means none."""
    return None if next_due < 0 else int(next_due)


def _claim_result(reply: Sequence[Any]) -> Claim:
    ids, next_due, paused, *held = reply
    pairs = held[0] if held else ()
    kinds = tuple((_text(pairs[i]), _text(pairs[i + 1])) for i in range(0, len(pairs), 2))
    return Claim([_text(i) for i in ids], _due(next_due), bool(paused), kinds)


def _blpop_timeout(seconds: float) -> float:
    """BLPOP takes whole seconds or fractions (Redis >= 6); never below a millisecond."""
    return max(0.001, round(seconds, 3))


@translated_methods
class Broker(FlowReads, EndingsMixin):
    """ZipLine's queues in one Redis; thread-safe (it holds a connection pool, not a connection)."""

    def __init__(self, client: redis.Redis, prefix: str, clock: Clock | None = None) -> None:
        self.client = client
        self.prefix = prefix
        self.clock: Clock = clock or RedisClock()  # the scripts' now_ms: Redis TIME unless a test drives it
        self._scripts: dict[str, Script] = {name: client.register_script(source(name)) for name in SCRIPT_NAMES}
        self.queues_key = queues_key(prefix)
        self.epoch_key = epoch_key(prefix)
        self.workers_key = workers_key(prefix)
        self._known_queues: set[str] = set()
        self._keys: dict[str, QueueKeys] = {}  # built once per queue: every command needs them
        self.cluster = is_cluster(client)
        self._waiters = threading.local()  # each thread's Pub/Sub listener on a cluster (jobs.broker.waiting)

    def with_socket_timeout(self, seconds: float) -> Broker:
        """The same Redis and keys through a pool of its own whose commands fail after ``seconds``,
        without retrying: for a thread with other duties that must not hang on an unreachable Redis.
        """
        if isinstance(self.client, LazyCluster):
            quick = self.client.like(
                socket_timeout=seconds, socket_connect_timeout=seconds, retry=Retry(NoBackoff(), 0)
            )
            return Broker(cast(redis.Redis, quick), self.prefix, self.clock)
        if isinstance(self.client, RedisCluster):
            return Broker(cluster_client_like(self.client, seconds), self.prefix, self.clock)
        pool = self.client.connection_pool
        kwargs = {
            **pool.connection_kwargs,
            "socket_timeout": seconds,
            "socket_connect_timeout": seconds,
            "retry": Retry(NoBackoff(), 0),
        }
        if isinstance(pool, SentinelConnectionPool):  # the same sentinels and master name
            kwargs.pop("connection_pool", None)
            own: redis.ConnectionPool = type(pool)(pool.service_name, pool.sentinel_manager, **kwargs)
        else:
            own = redis.ConnectionPool(connection_class=pool.connection_class, **kwargs)
        return Broker(redis.Redis(connection_pool=own), self.prefix, self.clock)

    def master_address(self) -> str | None:
        """``host:port`` of the master in use when the sentinels choose it; None for a single Redis or a cluster."""
        from jobs.broker.sentinel import master_address

        return None if self.cluster else master_address(self.client)

    # -- keys --------------------------------------------------------------------------------

    def keys(self, queue: str) -> QueueKeys:
        known = self._keys.get(queue)
        if known is None:
            if len(self._keys) >= KEYS_CACHE_MAX:
                self._keys.clear()
            known = self._keys[queue] = queue_keys(self.prefix, queue)
        return known

    def worker_key(self, worker_id: str) -> str:
        return worker_key(self.prefix, worker_id)

    def _run(self, name: str, keys: Sequence[str], args: Sequence[Any], client: Any = None) -> Any:
        return self._scripts[name](keys=keys, args=args, client=client or self.client)

    # -- submit --------------------------------------------------------------------------------

    def push(self, items: Iterable[PushItem]) -> int:
        """Add job ids: one script call per queue, all in one round trip."""
        now_ms = self.clock.script_ms()
        by_queue: dict[str, list[Any]] = defaultdict(lambda: [now_ms])
        for item in items:
            by_queue[item.queue].extend((item.job_id, item.priority, item.due_ms, item.lane))
        if not by_queue:
            return 0
        new_queues = [q for q in by_queue if q not in self._known_queues]
        calls = []
        for queue, args in by_queue.items():
            k = self.keys(queue)
            calls.append(("enqueue", (k.ready, k.delayed, k.prio, k.seq, k.notify, k.leases, k.flow), args))
        if len(calls) == 1 and not new_queues:
            name, keys, args = calls[0]
            return int(self._run(name, keys, args))
        results = self._run_many(calls, extra=[("sadd", (self.queues_key, *new_queues))] if new_queues else [])
        self._known_queues.update(new_queues)
        return sum(int(r) for r in results)

    def _run_many(
        self,
        calls: Sequence[tuple[str, Sequence[str], Sequence[Any]]],
        extra: Sequence[tuple[str, tuple[Any, ...]]] = (),
        extra_replies: list[Any] | None = None,
    ) -> list[Any]:
        """Run the ``extra`` commands, then several scripts by SHA, in one pipeline (their replies go into
        ``extra_replies``, the scripts' are returned); a script Redis no longer has is loaded and rerun.

        (redis-py's pipeline asks ``SCRIPT EXISTS`` before every execute: one round trip too many.)
        A cluster refuses EVALSHA in a pipeline: there, each command is its own call.
        """
        replies_out = extra_replies if extra_replies is not None else []
        if self.cluster:
            replies_out.extend(getattr(self.client, command)(*command_args) for command, command_args in extra)
            return [self._run(name, keys, args) for name, keys, args in calls]
        pipe = self.client.pipeline(transaction=False)
        for command, command_args in extra:
            getattr(pipe, command)(*command_args)
        for name, keys, args in calls:
            pipe.evalsha(self._scripts[name].sha, len(keys), *keys, *args)
        replies = pipe.execute(raise_on_error=False)
        for reply in replies[: len(extra)]:
            if isinstance(reply, Exception):
                raise reply
            replies_out.append(reply)
        results = replies[len(extra) :]
        for index, result in enumerate(results):
            if isinstance(result, redis.exceptions.NoScriptError):
                name, keys, args = calls[index]
                results[index] = self._run(name, keys, args)  # loads the script, then runs it
            elif isinstance(result, Exception):
                raise result
        return results

    # -- work ----------------------------------------------------------------------------------

    def _claim_call(
        self, queue: str, worker_id: str, count: int, lease_ms: int, limits: FlowLimits, promote_limit: int = 100
    ) -> tuple[str, Sequence[str], Sequence[Any]]:
        k = self.keys(queue)
        keys = (k.ready, k.delayed, k.prio, k.seq, k.notify, k.leases, k.owners, k.paused, k.flow)
        return "claim", keys, (self.clock.script_ms(), worker_id, count, lease_ms, promote_limit, *limits.args())

    def claim(
        self,
        queue: str,
        worker_id: str,
        count: int,
        lease_ms: int,
        promote_limit: int = 100,
        limits: FlowLimits = NO_LIMITS,
    ) -> Claim:
        """Lease up to ``count`` jobs; ``limits`` (docs/flow-control.md) hold back what they must."""
        return _claim_result(self._run(*self._claim_call(queue, worker_id, count, lease_ms, limits, promote_limit)))

    def wait_and_claim(
        self,
        queues: Sequence[str],
        timeout: float,
        queue: str,
        worker_id: str,
        count: int,
        lease_ms: int,
        limits: FlowLimits = NO_LIMITS,
    ) -> Claim:
        """Block until a queue has work or ``timeout`` passes, then :meth:`claim` from ``queue``, in
        one round trip.

        The claim is pipelined behind the BLPOP, so Redis runs it the moment the wait ends (work
        arrived, or the timeout passed): a job sent to an idle worker is claimed without a second
        round trip after the wake-up.

        The BLPOP names one ``notify`` key per queue, each in its queue's hash slot: one command across
        slots, which a single Redis accepts and a cluster refuses (CROSSSLOT). On a cluster a worker of one
        queue BLPOPs its one key, and a worker of several waits on their Pub/Sub wake-ups; then it claims.
        """
        if self.cluster:
            wait_on_cluster(self.client, self._waiters, [self.keys(q).notify for q in queues], timeout)
            return self.claim(queue, worker_id, count, lease_ms, limits=limits)
        wait = ("blpop", ([self.keys(q).notify for q in queues], _blpop_timeout(timeout)))
        [result] = self._run_many([self._claim_call(queue, worker_id, count, lease_ms, limits)], extra=[wait])
        return _claim_result(result)

    def settle(
        self, queue: str, worker_id: str, settlements: Sequence[Settlement], counts: dict[str, int] | None = None
    ) -> list[bool]:
        """End leases; with ``counts`` (``{"completed": n, "failed": m}``, see :mod:`jobs.tally`) also
        bump the per-minute counters."""
        if not settlements:
            return []
        k = self.keys(queue)
        args: list[Any] = [worker_id]
        for s in settlements:
            args.extend((s.job_id, s.action, s.due_ms, s.priority))
        keys = (k.ready, k.delayed, k.prio, k.seq, k.notify, k.leases, k.owners, k.flow)
        extra = self._counter_calls(queue, counts or {})
        if not extra:
            return [bool(x) for x in self._run("settle", keys, args)]
        [result] = self._run_many([("settle", keys, args)], extra)
        return [bool(x) for x in result]

    def _counter_calls(self, queue: str, counts: dict[str, int]) -> list[tuple[str, tuple[Any, ...]]]:
        minute = int(time.time() // 60)
        calls: list[tuple[str, tuple[Any, ...]]] = []
        for name, value in counts.items():
            if value:
                key = f"{self.keys(queue).tag}:{name}:{minute}"
                calls += [("incrby", (key, value)), ("expire", (key, STATS_TTL_SECONDS))]
        return calls

    def count(self, queue: str, counts: dict[str, int]) -> None:
        """Bump the per-minute counters (``{"completed": n, "failed": m}``) without settling anything."""
        calls = self._counter_calls(queue, counts)
        if calls:
            self._run_many([], calls)

    def renew(self, queue: str, worker_id: str, job_ids: Sequence[str], lease_ms: int) -> list[str]:
        """Extend leases; returns the ids this worker no longer owns."""
        if not job_ids:
            return []
        k = self.keys(queue)
        lost = self._run("renew", (k.leases, k.owners, k.flow), (self.clock.script_ms(), worker_id, lease_ms, *job_ids))
        return [_text(i) for i in lost]

    # -- maintenance -------------------------------------------------------------------------

    def reclaim_expired(self, queue: str, limit: int) -> list[ExpiredLease]:
        """Remove expired leases; returns each job id with the id of the worker that held it."""
        k = self.keys(queue)
        keys = (k.leases, k.owners, k.flow, k.notify)
        flat = [_text(x) for x in self._run("reclaim", keys, (self.clock.script_ms(), limit))]
        return [ExpiredLease(job_id, worker_id) for job_id, worker_id in zip(flat[0::2], flat[1::2], strict=True)]

    def leased_by(self, queue: str, worker_id: str) -> list[str]:
        """The ids whose lease this worker holds (a dead worker's jobs)."""
        owners = cast(dict[bytes, bytes], self.client.hgetall(self.keys(queue).owners))
        return sorted(_text(job_id) for job_id, owner in owners.items() if _text(owner) == worker_id)

    def promote_due(self, queue: str, limit: int) -> Promoted:
        k = self.keys(queue)
        moved, next_due = self._run(
            "promote", (k.ready, k.delayed, k.prio, k.seq, k.notify, k.flow), (self.clock.script_ms(), limit)
        )
        return Promoted([_text(i) for i in moved], _due(next_due))

    def remove(self, queue: str, job_ids: Sequence[str]) -> int:
        if not job_ids:
            return 0
        k = self.keys(queue)
        return int(self._run("remove", (k.ready, k.delayed, k.prio, k.flow), list(job_ids)))

    def restore(self, queue: str, items: Sequence[RestoreItem], lease_ms: int, limited: bool = False) -> int:
        """Put back what the database holds; ``limited``: the queue has limits, so it becomes a flow
        queue first and the leases put back hold their concurrency slots."""
        if not items:
            return 0
        k = self.keys(queue)
        args: list[Any] = [self.clock.script_ms(), lease_ms, "1" if limited else "0"]
        for item in items:
            extra = item.worker_id if item.kind == "lease" else item.priority
            args.extend((item.job_id, item.kind, extra, item.due_ms, item.lane))
        self.client.sadd(self.queues_key, queue)
        keys = (k.ready, k.delayed, k.prio, k.seq, k.notify, k.leases, k.owners, k.flow)
        return int(self._run("restore", keys, args))

    # -- queues --------------------------------------------------------------------------------

    def queue_names(self) -> set[str]:
        return {_text(q) for q in cast(set[bytes], self.client.smembers(self.queues_key))}

    def set_paused(self, queue: str, paused: bool) -> None:
        key = self.keys(queue).paused
        if paused:
            self.client.set(key, "1")
        else:
            self.client.delete(key)
            self.client.rpush(self.keys(queue).notify, "1")
            self.client.publish(self.keys(queue).notify, "1")  # workers of several queues on a cluster
        self.client.sadd(self.queues_key, queue)

    def depths(self, queue: str) -> dict[str, int]:
        """Ids waiting (in every lane of a flow queue), delayed and leased, and the paused flag."""
        stats = self.flow_stats([queue])[queue]
        return {"ready": stats.waiting, "delayed": stats.delayed, "leased": stats.leased, "paused": int(stats.paused)}

    def ids(self, queue: str) -> dict[str, set[str]]:
        """Every id Redis holds for a queue, by structure (for the reconciler and tests)."""
        k = self.keys(queue)
        pipe = self.client.pipeline(transaction=False)
        for key in (k.ready, k.delayed, k.leases):
            pipe.zrange(key, 0, -1)
        ready, delayed, leases = pipe.execute()
        return {
            "ready": {_text(i) for i in ready},
            "delayed": {_text(i) for i in delayed},
            "leases": {_text(i) for i in leases},
        }

    def is_paused(self, queue: str) -> bool:
        return bool(self.client.exists(self.keys(queue).paused))

    def scan_ids(self, queue: str, structure: str, batch: int) -> Iterator[list[str]]:
        """The ids of one structure (``ready``, ``delayed`` or ``leases``), a batch at a time (ZSCAN:
        no long command however large the queue)."""
        key = getattr(self.keys(queue), structure)
        cursor = 0
        while True:
            cursor, members = cast(tuple[int, list[tuple[Any, float]]], self.client.zscan(key, cursor, count=batch))
            if members:
                yield [_text(member) for member, _score in members]
            if cursor == 0:
                return

    def counter_series(self, queue: str, name: str, minutes: int) -> list[int]:
        """Per-minute counts (``completed`` or ``failed``, :mod:`jobs.tally`) for the last ``minutes`` minutes, oldest first."""
        now = int(time.time() // 60)
        k = self.keys(queue)
        values = cast(list[Any], self.client.mget([f"{k.tag}:{name}:{m}" for m in range(now - minutes + 1, now + 1)]))
        return [int(v or 0) for v in values]

    # -- data loss detection -----------------------------------------------------------------------

    def epoch_present(self) -> bool:
        return bool(self.client.exists(self.epoch_key))

    def mark_epoch(self) -> None:
        self.client.set(self.epoch_key, str(time.time()))

    def clear_epoch(self) -> None:
        """Forget the epoch marker: the next reconcile pass rebuilds Redis from the database."""
        self.client.delete(self.epoch_key)

    # -- reachability ------------------------------------------------------------------------------

    def ping(self) -> None:
        """Raise the client's error when Redis does not answer."""
        self.client.ping()
