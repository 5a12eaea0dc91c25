"""The floor of ZipLine's own enqueue-to-start path: its row, its scripts and its statements, with bare clients.

``bench/latency_floor.py``'s first chained path uses a narrow table and a one-line push script, the
least any queue with a durable row could do. This one is the floor of *ZipLine's* path, as
``bench/enqueue_floor.py`` is for a single enqueue (issue 18 judges both against the floor of that
path): the client INSERTs the row ``jobs.enqueue`` makes (every column, into a copy of ``jobs_job``
with its indexes and checks) and calls the broker's ``enqueue`` script by SHA with the same keys and
arguments; a worker process blocked in BLPOP on the queue's notify key, with the ``claim`` script
pipelined behind the wait as ``Broker.wait_and_claim`` does, runs the claim's prepared UPDATE (the
statement text ``jobs.batch_sql`` sends, every column returned) and hands the row to a thread. No
ZipLine code runs between the client's first statement and the thread's stamp.

ZipLine's code is used once, untimed, to make the model row and to name the keys, scripts and
statement. The copy of the table lives in a schema of its own in the benchmark's database, dropped
after; the queue is a private one, its Redis keys deleted after.
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
import redis

from bench.latency_floor import stamping_thread

SCHEMA = "zipline_floor"


class PathFloor:
    """The path's parts, named once by ZipLine's code; :meth:`times` runs them with bare clients.

    Django must be set up (:func:`for_benchmark` does it for the benchmark's database).
    """

    def __init__(self, database_url: str, job_type: str = "bench_stamp") -> None:
        from bench.enqueue_floor import EnqueueFloor
        from jobs import enqueue
        from jobs.batch_sql import _CLAIM_FROM, _CLAIM_ONE_PG, _CLAIM_TO
        from jobs.broker import get_broker
        from jobs.broker.items import NO_LIMITS

        self.database_url = database_url
        self.queue = f"floor-{uuid.uuid4().hex[:12]}"
        broker = get_broker()
        self.redis_kwargs = broker.client.connection_pool.connection_kwargs
        queue_keys = broker.keys(self.queue)
        self.notify_key, self.all_keys = queue_keys.notify, dataclasses.astuple(queue_keys)
        model = enqueue(job_type, {"enqueued_at": 0.0}, queue=self.queue)
        self.client = EnqueueFloor(self.database_url, _redis_url(self.redis_kwargs), str(model.pk))
        self.client.redis.delete(*self.all_keys)  # the model job is never claimed
        name, keys, args = broker._claim_call(self.queue, "floor-worker", 64, 60_000, NO_LIMITS)
        self.claim_sha, self.claim_keys, self.claim_args = broker._scripts[name].sha, keys, args
        self.update_sql, self.update_to, self.update_from = _CLAIM_ONE_PG, _CLAIM_TO, list(_CLAIM_FROM)
        self.client.pg.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")  # left by a run that was killed
        self.client.pg.execute(f"CREATE SCHEMA {SCHEMA}")
        self.client.pg.execute(f"CREATE TABLE {SCHEMA}.jobs_job (LIKE public.jobs_job INCLUDING ALL)")
        self.client.pg.execute(f"SET search_path = {SCHEMA}")

    def times(self, samples: int, interval: float) -> list[float]:
        """Milliseconds from before the client's INSERT to the worker's thread holding the claimed row."""
        fork = multiprocessing.get_context("fork")
        started: multiprocessing.SimpleQueue[float] = fork.SimpleQueue()
        ready = fork.Event()
        worker = fork.Process(target=self._worker, args=(samples, started, ready))
        worker.start()
        if not ready.wait(10):
            raise SystemExit("path_floor: the worker did not start within 10 s")
        client, times = self.client, []
        values = list(client.values)
        for _ in range(samples):
            time.sleep(interval or 0.002)  # back to back, the worker must be blocked again first
            sent = time.perf_counter()
            client.send_one(values)
            began = started.get()
            if math.isnan(began):
                raise SystemExit("path_floor: no job reached the worker within 10 s")
            times.append((began - sent) * 1000)
        worker.join()
        return times

    def _worker(self, samples: int, started: multiprocessing.SimpleQueue[float], ready: Any) -> None:
        """Wait with the claim pipelined behind, mark the row running, hand it to a thread that stamps."""
        client = redis.Redis(connection_pool=redis.ConnectionPool(**self.redis_kwargs))
        handoff, thread = stamping_thread(started)
        keys, args = self.claim_keys, self.claim_args
        with psycopg.connect(self.database_url, autocommit=True, options=f"-c search_path={SCHEMA}") as pg:
            ready.set()
            for _ in range(samples):
                pipe = client.pipeline(transaction=False)
                pipe.blpop([self.notify_key], timeout=10)
                pipe.evalsha(self.claim_sha, len(keys), *keys, *args)
                woke, claimed = pipe.execute()
                if woke is None or not claimed[0]:
                    started.put(math.nan)
                    break
                now = datetime.now(UTC)
                params = [self.update_to, "floor-worker", now, now, claimed[0][0].decode(), *self.update_from, now]
                handoff.put(pg.execute(self.update_sql, params, prepare=True).fetchall())
        handoff.put(None)
        thread.join()

    def close(self) -> None:
        """Drop the table's copy and the queue's keys; close the connections."""
        self.client.pg.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
        self.client.redis.delete(*self.all_keys)
        self.client.close()


def for_benchmark() -> PathFloor:
    """A :class:`PathFloor` on the benchmark's database (created and migrated if need be)."""
    from bench.zipline_adapter import _prepare_database

    _prepare_database()
    import django

    django.setup()
    from django.conf import settings

    db = settings.DATABASES["default"]
    return PathFloor(f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}")


def _redis_url(kwargs: dict[str, Any]) -> str:
    password = f":{kwargs['password']}@" if kwargs.get("password") else ""
    return f"redis://{password}{kwargs.get('host', '127.0.0.1')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
