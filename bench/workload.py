"""Run one workload against one driver, inside that driver's interpreter, and print one JSON line.

    python -m bench.workload --driver rq_simple --workload drain_noop --n 10000

Run from the repository root. ``--check`` only imports the driver and prints its capabilities
(exit status 3 if it cannot be imported). Workers are always stopped on the way out, also on
SIGTERM/SIGINT and on timeouts.
"""

from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from bench.common import (
    BULK_BATCH,
    REDIS_URL,
    QueueDriver,
    harness_redis,
    latency_count,
    percentiles,
    read_done,
    read_first_start,
    read_latencies,
    wait_for,
)
from bench.drivers import DRIVERS
from bench.procs import RssSampler, pss_bytes, tree

EXIT_IMPORT_ERROR = 3
WARMUP_JOBS = 20


@dataclass
class Options:
    """Sizes and limits of a workload run."""

    n: int
    processes: int
    sleep_s: float
    interval_s: float
    timeout: float


Workload = Callable[[QueueDriver, Options], dict[str, Any]]


def _reset(driver: QueueDriver) -> None:
    harness_redis(driver.redis_url).flushdb()
    driver.setup()


def _done_reader(driver: QueueDriver) -> Callable[[], int]:
    r = harness_redis(driver.redis_url)
    return lambda: read_done(r)


FLOOR_CHUNK = 100  # jobs enqueued by one side before the other takes its turn


def enqueue_one(driver: QueueDriver, opts: Options) -> dict[str, Any]:
    """Enqueue ``n`` no-op jobs one by one, no workers running. Where the driver has a floor of its path,
    ``n`` jobs along the floor too, in alternating chunks, so that the machine's drift hits both alike
    (``floor_jobs_per_s``)."""
    _reset(driver)
    driver.enqueue_noop_serial(WARMUP_JOBS)
    sides = [driver.enqueue_noop_serial]
    if driver.has_enqueue_floor:
        driver.enqueue_floor_serial(WARMUP_JOBS)
        sides.append(driver.enqueue_floor_serial)
    spent = [0.0] * len(sides)
    chunk = FLOOR_CHUNK if len(sides) > 1 else opts.n
    for first in range(0, opts.n, chunk):
        for i, enqueue in enumerate(sides):
            start = time.perf_counter()
            enqueue(min(chunk, opts.n - first))
            spent[i] += time.perf_counter() - start
    result = {"jobs_per_s": opts.n / spent[0], "seconds": spent[0]}
    if len(sides) > 1:
        result.update(floor_jobs_per_s=opts.n / spent[1], floor_seconds=spent[1], of_floor=spent[1] / spent[0])
    return result


def _enqueue_bulk(driver: QueueDriver, n: int) -> None:
    for first in range(0, n, BULK_BATCH):
        driver.enqueue_noop_bulk(min(BULK_BATCH, n - first))


def enqueue_bulk(driver: QueueDriver, opts: Options) -> dict[str, Any]:
    """Enqueue ``n`` no-op jobs through the bulk API, in batches of BULK_BATCH, no workers running."""
    if not driver.supports_bulk:
        return {"skipped": "no bulk enqueue API"}
    _reset(driver)
    driver.enqueue_noop_bulk(WARMUP_JOBS)
    start = time.perf_counter()
    _enqueue_bulk(driver, opts.n)
    elapsed = time.perf_counter() - start
    return {"jobs_per_s": opts.n / elapsed, "seconds": elapsed}


def _drain(driver: QueueDriver, opts: Options, enqueue: Callable[[], None]) -> dict[str, Any]:
    """Enqueue ``n`` jobs, then start the workers and time first job start -> last job done, and
    worker start -> last job done; the pool's PSS once the last job is done (before the stop)."""
    _reset(driver)
    enqueue()
    done = _done_reader(driver)
    started = time.time()
    with RssSampler(driver.worker_pids) as rss:
        driver.start_workers(opts.processes)
        finished = wait_for(done, opts.n, opts.timeout)
        rss.sample()
        pss_after = pss_bytes(tree(driver.worker_pids()))
    first = read_first_start(harness_redis(driver.redis_url)) or started
    elapsed = finished - first
    return {
        "jobs_per_s": opts.n / elapsed,
        "seconds": elapsed,
        "jobs_per_s_from_start": opts.n / (finished - started),
        "startup_s": first - started,
        "peak_rss_mb": rss.peak_mb,
        "peak_pss_mb": rss.peak_pss_mb,
        "pss_after_mb": pss_after / 2**20,
    }


def drain_noop(driver: QueueDriver, opts: Options) -> dict[str, Any]:
    """Drain ``n`` queued no-op jobs."""

    def enqueue() -> None:
        if driver.supports_bulk:
            _enqueue_bulk(driver, opts.n)
        else:
            driver.enqueue_noop_serial(opts.n)

    return _drain(driver, opts, enqueue)


def drain_sleep(driver: QueueDriver, opts: Options) -> dict[str, Any]:
    """Drain ``n`` queued jobs that each sleep ``sleep_s``."""

    def enqueue() -> None:
        for _ in range(opts.n):
            driver.enqueue_sleep(opts.sleep_s)

    return _drain(driver, opts, enqueue)


def latency(driver: QueueDriver, opts: Options) -> dict[str, Any]:
    """Send ``n`` stamp jobs ``interval_s`` apart to warm workers; enqueue-to-start percentiles."""
    _reset(driver)
    r = harness_redis(driver.redis_url)
    done = _done_reader(driver)
    with RssSampler(driver.worker_pids) as rss:
        driver.start_workers(opts.processes)
        driver.enqueue_noop_serial(WARMUP_JOBS)
        wait_for(done, WARMUP_JOBS, opts.timeout)
        with rss.paused():  # sampled during the warm-up and after the sends, not between them
            begin = time.perf_counter()
            for i in range(opts.n):
                pause = begin + i * opts.interval_s - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                driver.enqueue_stamp(time.time())
            sent = time.perf_counter() - begin
        wait_for(lambda: latency_count(r), opts.n, opts.timeout)
    values = [v * 1000 for v in read_latencies(r)]
    result: dict[str, Any] = {f"{k}_ms": v for k, v in percentiles(values).items()}
    result.update({"max_ms": max(values), "send_interval_ms": sent * 1000 / max(opts.n - 1, 1)})
    result.update({"peak_rss_mb": rss.peak_mb, "peak_pss_mb": rss.peak_pss_mb})
    return result


WORKLOADS: dict[str, Workload] = {
    "enqueue_one": enqueue_one,
    "enqueue_bulk": enqueue_bulk,
    "drain_noop": drain_noop,
    "drain_sleep": drain_sleep,
    "latency": latency,
}


def load_driver(name: str) -> type[QueueDriver]:
    """Import the driver class of a registered row (ImportError if the library is missing)."""
    spec = DRIVERS[name]
    cls = getattr(importlib.import_module(spec.module), spec.cls, None)
    if cls is None:
        raise ImportError(f"{spec.module} has no class {spec.cls}")
    return cls


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line of one workload run."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--driver", required=True, choices=sorted(DRIVERS))
    p.add_argument("--workload", choices=sorted(WORKLOADS))
    p.add_argument("--check", action="store_true", help="only import the driver and print its capabilities")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--sleep-ms", type=float, default=20.0)
    p.add_argument("--interval-ms", type=float, default=10.0)
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the jobs")
    p.add_argument("--log", type=Path, help="file for the workers' output")
    args = p.parse_args(argv)
    if not args.check and not args.workload:
        p.error("--workload is required unless --check")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point; prints one JSON object."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    try:
        driver = load_driver(args.driver)(REDIS_URL, args.log)
    except ImportError as exc:
        print(json.dumps({"error": f"ImportError: {exc}"}))
        return EXIT_IMPORT_ERROR
    if args.check:
        print(json.dumps({"ok": True, "supports_bulk": driver.supports_bulk, "version": driver.library_version()}))
        return 0
    opts = Options(args.n, args.processes, args.sleep_ms / 1000, args.interval_ms / 1000, args.timeout)
    try:
        result = WORKLOADS[args.workload](driver, opts)
    except TimeoutError as exc:
        result = {"error": str(exc)}
    finally:
        driver.stop_workers()
        driver.teardown()
        harness_redis(driver.redis_url).flushdb()  # leave the bench db empty
    result.update({"n": opts.n, "processes": opts.processes})
    print(json.dumps(result))
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())
