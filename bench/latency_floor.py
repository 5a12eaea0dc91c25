"""The floor under ZipLine's enqueue-to-start latency on this machine, measured with raw clients.

A job's path from ``enqueue`` to its processor needs, by design, four round trips and a thread
hand-off: a durable INSERT (the row is committed before its id reaches Redis), the push to Redis
that wakes an idle worker (its claim is pipelined behind the wait, so it adds no round trip), the
UPDATE that marks the row running (a worker never runs a job whose row is not runnable), and the
hand-off to a job thread. A queue without a database record (Huey, RQ) pays only the push. This
times each of them with bare psycopg, redis-py and ``queue.SimpleQueue``, no ZipLine code around
them, at the harness's pace (one every 10 ms, where every process has gone idle in between), and
back to back for comparison; then the whole path chained, as a job takes it: a client INSERTs and
pushes, a worker process blocked in BLPOP wakes, UPDATEs and hands the row to a thread. That chain
runs twice: on a narrow table with a one-line push script (the least any queue with a durable row
could do), and with ZipLine's own row, scripts and statements (``bench/path_floor.py``). The second
one's median is the floor: what no implementation of ZipLine's path can beat here, as
``bench/enqueue_floor.py`` is for a single enqueue. A chain is faster than the sum of its steps'
medians: timed alone, each step pays its own wake from idle, and chained, the worker's UPDATE
follows its wake at once.

Run: ``.venv/bin/python bench/latency_floor.py`` (``--samples``, ``--interval-ms``; PostgreSQL
and Redis URLs as in ``bench/enqueue_bench.py``). It uses the database ``zipline_floor_bench``
(created here, dropped after), Redis database 10, a copy of ``jobs_job`` in a schema of the
benchmark's database ``zipline_bench`` (dropped after) and a private queue there. It prints one
JSON line per step and a sum (``--summary``: one JSON object; ``bench/run.py`` takes the paced
one after each of ZipLine's latency runs).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from queue import SimpleQueue
from typing import Any

import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent

DB_NAME = "zipline_floor_bench"
# The jobs table's shape where it matters: a uuid key, a JSON payload, and the same secondary indexes.
SCHEMA = """
CREATE TABLE job (
    id uuid PRIMARY KEY, type varchar(200) NOT NULL, queue varchar(100) NOT NULL,
    status varchar(20) NOT NULL, priority integer NOT NULL, payload jsonb NOT NULL,
    attempts integer NOT NULL, worker varchar(200) NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL, started_at timestamptz, schedule_at timestamptz,
    completed_at timestamptz
);
CREATE INDEX job_created ON job (created_at DESC);
CREATE INDEX job_queue_status ON job (queue, status);
CREATE INDEX job_status_created ON job (status, created_at DESC);
CREATE INDEX job_due ON job (schedule_at) WHERE status IN ('scheduled', 'retrying');
"""
INSERT = (
    "INSERT INTO job (id, type, queue, status, priority, payload, attempts, created_at) "
    "VALUES (%s, 'bench_stamp', 'default', 'pending', 0, %s, 0, now())"
)
UPDATE = (
    "UPDATE job SET status = 'running', attempts = attempts + 1, worker = 'w', started_at = now() "
    "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS no_flush "
    "WHERE id = %s AND status = 'pending' RETURNING id, type, payload"
)


def timed(step: Callable[[], object], samples: int, interval: float) -> list[float]:
    """Milliseconds per call, one call every ``interval`` seconds (back to back when 0)."""
    times = []
    for _ in range(samples):
        if interval:
            time.sleep(interval)
        started = time.perf_counter()
        step()
        times.append((time.perf_counter() - started) * 1000)
    return times


def handoff_times(samples: int, interval: float) -> list[float]:
    """Milliseconds from ``put`` on one thread to ``get`` returning on another."""
    work: SimpleQueue[float] = SimpleQueue()
    seen: SimpleQueue[float] = SimpleQueue()

    def consumer() -> None:
        for _ in range(samples):
            sent = work.get()
            seen.put((time.perf_counter() - sent) * 1000)

    thread = threading.Thread(target=consumer, daemon=True)
    thread.start()
    times = []
    for _ in range(samples):
        if interval:
            time.sleep(interval)
        work.put(time.perf_counter())
        times.append(seen.get())
    thread.join()
    return times


def wake_times(r: redis.Redis, samples: int, interval: float) -> list[float]:
    """Milliseconds from a script call that pushes to the moment a worker blocked in BLPOP wakes.

    The worker is another process, as ZipLine's is; ``perf_counter`` is the system's monotonic
    clock on Linux, so the two processes' readings compare.
    """
    key = f"floor:{uuid.uuid4().hex}"
    push = r.register_script("return redis.call('LPUSH', KEYS[1], ARGV[1])")
    push(keys=[f"{key}:warm"], args=[0])
    woke: multiprocessing.SimpleQueue[float] = multiprocessing.SimpleQueue()
    worker = multiprocessing.get_context("fork").Process(target=_blocked_worker, args=(r, key, samples, woke))
    worker.start()
    times = []
    for _ in range(samples):
        time.sleep(interval or 0.002)  # the worker must be blocked again before the next push
        sent = time.perf_counter()
        push(keys=[key], args=[sent])
        woken = woke.get()
        if math.isnan(woken):
            raise SystemExit("latency_floor: no push reached the blocked worker within 10 s")
        times.append((woken - sent) * 1000)
    worker.join()
    r.delete(key, f"{key}:warm")
    return times


def _blocked_worker(r: redis.Redis, key: str, samples: int, woke: multiprocessing.SimpleQueue[float]) -> None:
    client = redis.Redis(connection_pool=redis.ConnectionPool(**r.connection_pool.connection_kwargs))
    for _ in range(samples):
        if client.blpop([key], timeout=10) is None:
            woke.put(math.nan)  # tells the parent; it stops with an error
            return
        woke.put(time.perf_counter())


def chained_times(postgres: str, r: redis.Redis, samples: int, interval: float) -> list[float]:
    """Milliseconds from before a client's INSERT to a worker's thread holding the claimed row."""
    key = f"floor:{uuid.uuid4().hex}"
    push = r.register_script("return redis.call('LPUSH', KEYS[1], ARGV[1])")
    fork = multiprocessing.get_context("fork")
    started: multiprocessing.SimpleQueue[float] = fork.SimpleQueue()
    ready = fork.Event()
    worker = fork.Process(target=_claiming_worker, args=(postgres, r, key, samples, started, ready))
    worker.start()
    if not ready.wait(10):
        raise SystemExit("latency_floor: the chained worker did not start within 10 s")
    times = []
    with psycopg.connect(postgres, autocommit=True) as pg:
        for _ in range(samples):
            time.sleep(interval or 0.002)  # back to back, the worker must be blocked again first
            sent = time.perf_counter()
            job_id = str(uuid.uuid4())
            pg.execute(INSERT, (job_id, '{"enqueued_at": 0}'), prepare=True)
            push(keys=[key], args=[job_id])
            began = started.get()
            if math.isnan(began):
                raise SystemExit("latency_floor: no push reached the chained worker within 10 s")
            times.append((began - sent) * 1000)
    worker.join()
    r.delete(key)
    return times


def stamping_thread(started: multiprocessing.SimpleQueue[float]) -> tuple[SimpleQueue[Any], threading.Thread]:
    """A floor worker's job thread, started: it puts the time each row handed to it arrives on ``started``;
    handing it None stops it."""
    handoff: SimpleQueue[Any] = SimpleQueue()

    def pool_thread() -> None:
        while handoff.get() is not None:
            started.put(time.perf_counter())

    thread = threading.Thread(target=pool_thread, daemon=True)
    thread.start()
    return handoff, thread


def _claiming_worker(
    postgres: str, r: redis.Redis, key: str, samples: int, started: multiprocessing.SimpleQueue[float], ready: Any
) -> None:
    """Wake on the push, mark the row running, hand it to a thread; the thread stamps the start."""
    client = redis.Redis(connection_pool=redis.ConnectionPool(**r.connection_pool.connection_kwargs))
    handoff, thread = stamping_thread(started)
    with psycopg.connect(postgres, autocommit=True) as pg:
        ready.set()
        for _ in range(samples):
            popped: Any = client.blpop([key], timeout=10)
            if popped is None:
                started.put(math.nan)
                break
            handoff.put(pg.execute(UPDATE, (popped[1].decode(),), prepare=True).fetchall())
    handoff.put(None)
    thread.join()


def measure(pg: psycopg.Connection, r: redis.Redis, samples: int, interval: float) -> dict[str, list[float]]:
    inserted: list[str] = []

    def insert() -> None:
        job_id = str(uuid.uuid4())
        pg.execute(INSERT, (job_id, '{"enqueued_at": 0}'), prepare=True)
        inserted.append(job_id)

    def update() -> None:
        pg.execute(UPDATE, (inserted.pop(),), prepare=True).fetchall()

    return {
        "durable INSERT (committed)": timed(insert, samples, interval),
        "push -> idle worker wakes (the claim runs behind the wake)": wake_times(r, samples, interval),
        "UPDATE to running (no fsync wait)": timed(update, samples, interval),
        "thread hand-off": handoff_times(samples, interval),
    }


def run(postgres: str, redis_url: str, samples: int, interval_ms: float, paces: tuple[str, ...]) -> dict[str, Any]:
    """Each step's median per pace ("paced", "back to back") and their sum, in a scratch database."""
    sys.path.insert(0, str(ROOT))  # run as a script: the project's packages are one level up
    from bench.path_floor import for_benchmark

    path_floor = for_benchmark()
    admin = f"{postgres}/postgres"
    subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {DB_NAME}"], check=True, capture_output=True)
    subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {DB_NAME}"], check=True, capture_output=True)
    intervals = {"paced": interval_ms / 1000, "back to back": 0.0}
    found: dict[str, Any] = {}
    try:
        with psycopg.connect(f"{postgres}/{DB_NAME}", autocommit=True) as pg:
            pg.execute(SCHEMA)
            r = redis.Redis.from_url(redis_url)
            for pace in paces:
                measured = measure(pg, r, samples, intervals[pace])
                steps = {step: statistics.median(times) for step, times in measured.items()}
                chained = chained_times(f"{postgres}/{DB_NAME}", r, samples, intervals[pace])
                own = path_floor.times(samples, intervals[pace])
                found[pace] = {
                    "steps_ms": steps,
                    "sum_ms": sum(steps.values()),
                    "chained_ms": statistics.median(chained),
                    "chained_p99_ms": statistics.quantiles(chained, n=100)[98],
                    "path_ms": statistics.median(own),
                    "path_p99_ms": statistics.quantiles(own, n=100)[98],
                }
    finally:
        path_floor.close()
        subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {DB_NAME}"], check=True, capture_output=True)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--interval-ms", type=float, default=10.0)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/10")
    parser.add_argument("--paced-only", action="store_true", help="skip the back-to-back pass")
    parser.add_argument("--summary", action="store_true", help="print one JSON object instead of a line per step")
    args = parser.parse_args()
    paces = ("paced",) if args.paced_only else ("paced", "back to back")
    found = run(args.postgres, args.redis, args.samples, args.interval_ms, paces)
    if args.summary:
        print(json.dumps(found))
        return
    for pace, measured in found.items():
        for step, median in measured["steps_ms"].items():
            print(json.dumps({"pace": pace, "step": step, "p50_ms": round(median, 3)}))
        print(json.dumps({"pace": pace, "step": "sum of medians", "p50_ms": round(measured["sum_ms"], 3)}))
        chained = {"p50_ms": round(measured["chained_ms"], 3), "p99_ms": round(measured["chained_p99_ms"], 3)}
        print(json.dumps({"pace": pace, "step": "the path chained, a narrow table and a one-line push", **chained}))
        own = {"p50_ms": round(measured["path_ms"], 3), "p99_ms": round(measured["path_p99_ms"], 3)}
        print(json.dumps({"pace": pace, "step": "ZipLine's row, scripts and statements chained: the floor", **own}))


if __name__ == "__main__":
    main()
