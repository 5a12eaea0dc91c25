"""Shared pieces of the benchmark: the driver interface, the job contract, counters and statistics.

Every library under test (each peer, and ZipLine itself) is wrapped in a :class:`QueueDriver`.
A driver runs *inside the library's own interpreter* (``bench/workload.py`` is started with that
interpreter), so this module imports nothing beyond the standard library at import time; the
``redis`` package, present in every venv involved, is imported lazily.

The driver interface (what ``bench/zipline_adapter.py`` must provide)
---------------------------------------------------------------------
``bench/zipline_adapter.py`` defines ``class ZipLineDriver(QueueDriver)`` and is run with
``/work/main/.venv/bin/python`` from the repository root (``PYTHONPATH`` = repo root).

Required (abstract):

* ``enqueue_noop(self) -> None``: enqueue one job that calls :func:`job_noop`.
* ``enqueue_sleep(self, seconds: float) -> None``: enqueue one job that calls :func:`job_sleep`.
* ``enqueue_stamp(self, enqueued_at: float) -> None``: enqueue one job that calls
  :func:`job_stamp` with ``enqueued_at`` (a ``time.time()`` taken just before the call).
* ``worker_commands(self, processes: int) -> list[WorkerCommand]``: the command line(s) that start
  the workers with ``processes`` worker processes in total. The harness starts each command in its
  own process group, logs it to a file, samples its process tree's RSS and kills the tree at the end.

Optional (have defaults):

* ``supports_bulk: ClassVar[bool]`` (default False) and ``enqueue_noop_bulk(self, count) -> None``:
  enqueue ``count`` no-op jobs with one call of a real bulk API (the harness calls it with batches
  of :data:`BULK_BATCH`).
* ``enqueue_noop_serial(self, count) -> None``: enqueue ``count`` no-op jobs one at a time
  (defaults to calling ``enqueue_noop`` in a loop; override only to stay in an event loop).
* ``has_enqueue_floor: ClassVar[bool]`` (default False) and ``enqueue_floor_serial(self, count)``:
  enqueue ``count`` no-op jobs one by one along the floor of the library's own path (ZipLine: the
  same row committed with bare psycopg, then the same Redis push); ``enqueue_one`` times it too.
* ``setup(self) -> None``: called once per workload *after* the harness has FLUSHDB'ed the bench
  Redis db and before anything is enqueued; reset any other state here (e.g. PostgreSQL tables).
* ``teardown(self) -> None``: called once at the end of the workload, after the workers are stopped.
* ``library_version(self) -> str``: shown in the results.
* ``start_workers``/``stop_workers``/``worker_pids``: override only if workers cannot be expressed
  as commands; ``worker_pids`` must then return the roots of the worker process trees.

The job contract: each job body calls exactly one of :func:`job_noop`, :func:`job_sleep` or
:func:`job_stamp` (or, in an async library, the same Redis commands without blocking the loop),
passing a Redis client connected to :data:`REDIS_URL`. :func:`job_redis` gives one per process.
"""

from __future__ import annotations

import abc
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from redis import Redis

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent

#: The Redis database every library uses for the benchmark. It is FLUSHDB'ed before and after each workload.
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")

#: Counter INCR'ed by every finished job.
KEY_DONE = "bench:done"
#: time.time() at which the first job started (SET NX by every job).
KEY_FIRST = "bench:first"
#: List of enqueue-to-start latencies in seconds, RPUSH'ed by stamp jobs.
KEY_LATENCY = "bench:latency"

#: Batch size for enqueue_noop_bulk.
BULK_BATCH = 1000


# --------------------------------------------------------------------------- job side


_job_client: tuple[int, Redis] | None = None


def job_redis() -> Redis:
    """A Redis client on :data:`REDIS_URL`, one per process (re-created after a fork)."""
    global _job_client
    if _job_client is None or _job_client[0] != os.getpid():
        import redis

        _job_client = (os.getpid(), redis.Redis.from_url(REDIS_URL))
    return _job_client[1]


def job_noop(r: Redis) -> None:
    """Body of the no-op job: note the first start and count the job, in one round trip."""
    pipe = r.pipeline(transaction=False)
    pipe.set(KEY_FIRST, repr(time.time()), nx=True)
    pipe.incr(KEY_DONE)
    pipe.execute()


def job_sleep(r: Redis, seconds: float) -> None:
    """Body of the sleeping job: note the first start, sleep, count the job."""
    r.set(KEY_FIRST, repr(time.time()), nx=True)
    time.sleep(seconds)
    r.incr(KEY_DONE)


def job_stamp(r: Redis, enqueued_at: float) -> None:
    """Body of the latency job: record how long after enqueueing this job started."""
    started = time.time()
    pipe = r.pipeline(transaction=False)
    pipe.rpush(KEY_LATENCY, repr(started - enqueued_at))
    pipe.incr(KEY_DONE)
    pipe.execute()


# --------------------------------------------------------------------------- driver interface


@dataclass
class WorkerCommand:
    """One worker command line; run from the repo root with PYTHONPATH=repo root."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


def venv_bin(name: str) -> str:
    """Path of a console script installed next to the running interpreter (its venv's bin/)."""
    return str(Path(sys.executable).with_name(name))


class QueueDriver(abc.ABC):
    """One job-queue library under test; see the module docstring for the contract."""

    supports_bulk: ClassVar[bool] = False
    has_enqueue_floor: ClassVar[bool] = False

    def __init__(self, redis_url: str = REDIS_URL, log_path: Path | None = None) -> None:
        self.redis_url = redis_url
        self.log_path = log_path
        self._procs: list[subprocess.Popen[bytes]] = []

    # -- hooks
    def setup(self) -> None:  # noqa: B027 - optional hook
        """Prepare clients/state; called after the bench db was flushed."""

    def teardown(self) -> None:  # noqa: B027 - optional hook
        """Release clients; called after the workers were stopped."""

    def library_version(self) -> str:
        """Version string of the library under test."""
        return ""

    # -- enqueueing
    @abc.abstractmethod
    def enqueue_noop(self) -> None:
        """Enqueue one job running :func:`job_noop`."""

    @abc.abstractmethod
    def enqueue_sleep(self, seconds: float) -> None:
        """Enqueue one job running :func:`job_sleep`."""

    @abc.abstractmethod
    def enqueue_stamp(self, enqueued_at: float) -> None:
        """Enqueue one job running :func:`job_stamp`."""

    def enqueue_noop_serial(self, count: int) -> None:
        """Enqueue ``count`` no-op jobs one by one."""
        for _ in range(count):
            self.enqueue_noop()

    def enqueue_noop_bulk(self, count: int) -> None:
        """Enqueue ``count`` no-op jobs with one bulk call (only if ``supports_bulk``)."""
        raise NotImplementedError(f"{type(self).__name__} has no bulk enqueue API")

    def enqueue_floor_serial(self, count: int) -> None:
        """Enqueue ``count`` no-op jobs one by one along the floor of this path (only if ``has_enqueue_floor``)."""
        raise NotImplementedError(f"{type(self).__name__} has no enqueue floor")

    # -- workers
    @abc.abstractmethod
    def worker_commands(self, processes: int) -> list[WorkerCommand]:
        """Command lines starting ``processes`` worker processes in total."""

    def start_workers(self, processes: int) -> None:
        """Start the workers, each command in its own process group."""
        from bench.procs import spawn

        env = {"BENCH_REDIS_URL": self.redis_url}
        for cmd in self.worker_commands(processes):
            self._procs.append(spawn(cmd.argv, {**env, **cmd.env}, self.log_path))

    def worker_pids(self) -> list[int]:
        """Root pids of the worker process trees."""
        return [p.pid for p in self._procs]

    def stop_workers(self) -> None:
        """Stop the workers and everything they forked (idempotent)."""
        from bench.procs import kill_trees

        kill_trees(self.worker_pids())
        for p in self._procs:
            p.wait()
        self._procs.clear()


# --------------------------------------------------------------------------- harness side


def redis_db(url: str) -> int:
    """The database number of a redis:// URL (0 if absent)."""
    tail = url.rsplit("/", 1)[-1].split("?", 1)[0]
    return int(tail) if tail.isdigit() and url.count("/") >= 3 else 0


def harness_redis(url: str = REDIS_URL) -> Redis:
    """Client the harness uses to reset the db and read the counters."""
    import redis

    if redis_db(url) == 0:
        raise SystemExit(f"refusing to use Redis db 0 for the benchmark (it is FLUSHDB'ed): {url}")
    return redis.Redis.from_url(url)


def read_first_start(r: Redis) -> float | None:
    """time.time() at which the first job started, if any did."""
    value: Any = r.get(KEY_FIRST)
    return float(value) if value else None


def read_done(r: Redis) -> int:
    """How many jobs have finished."""
    value: Any = r.get(KEY_DONE)
    return int(value or 0)


def read_latencies(r: Redis) -> list[float]:
    """Enqueue-to-start latencies recorded so far, in seconds."""
    values: Any = r.lrange(KEY_LATENCY, 0, -1)
    return [float(v) for v in values]


def latency_count(r: Redis) -> int:
    """How many latency samples were recorded."""
    value: Any = r.llen(KEY_LATENCY)
    return int(value)


def wait_for(read: Callable[[], int], target: int, timeout: float, interval: float = 0.005) -> float:
    """Poll ``read()`` every ``interval`` s until it reaches ``target``; return time.time() then."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if value >= target:
            return time.time()
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {value} of {target} jobs done after {timeout:.0f}s")
        time.sleep(interval)


# --------------------------------------------------------------------------- statistics


def percentiles(values: list[float], points: tuple[int, ...] = (50, 95, 99)) -> dict[str, float]:
    """Percentiles with linear interpolation (numpy's default), keyed ``p50`` etc."""
    if len(values) < 2:
        only = values[0] if values else float("nan")
        return {f"p{p}": only for p in points}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {f"p{p}": cuts[p - 1] for p in points}


def summarize(values: list[float]) -> dict[str, float]:
    """Median, min and max of several runs of one metric."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": len(values)}
