"""The no-op drain on a Redis Cluster of three masters against one Redis node, with Redis CPU per master.

Both Redis are this script's own (free ports, a temporary directory; never the shared Redis), started with
the test harness (``tests/redis_server.py``, ``tests/redis_cluster.py``; the cluster without replicas, so that
each master's CPU is its own). Each run drains ``--n`` no-op jobs spread over ``--queues`` queues (so they
spread over the masters) through ``runworkers --processes 2``: the pool is started and live before the jobs
are submitted in one ``enqueue_many``, and the drain is timed from the submit to the last job's row completed.
The targets alternate run by run, so a change in the machine's load hits both. Redis CPU is ``INFO cpu``
(user + sys) of each node before and after the drain. The database is the benchmark's (``zipline_bench``).

Then ``--failovers`` failovers each through Sentinel and on a cluster (with replicas), under a pool, a
scheduler and a producer: the time from the master's SIGKILL to the first job completed on the new master
(``bench/failover.py``).

    python bench/cluster_bench.py --n 5000 --runs 3 --failovers 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.zipline_settings")


def _cpu(ports: list[int]) -> list[float]:
    import redis

    out = []
    for port in ports:
        info = redis.Redis(port=port).info("cpu")
        out.append(float(info["used_cpu_user"]) + float(info["used_cpu_sys"]))  # type: ignore[index]
    return out


def _pool(url: str, queues: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "JQS_REDIS_URL": url, "DJANGO_SETTINGS_MODULE": "bench.zipline_settings"}
    command = [sys.executable, "manage.py", "runworkers", "--processes", "2", "--queues", ",".join(queues)]
    with open(log, "ab") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def _wait(predicate: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"cluster_bench: {what} not within {seconds:.0f} s")
        time.sleep(0.02)


def drain(url: str, ports: list[int], n: int, queues: list[str], log: Path) -> dict[str, Any]:
    """One drain of ``n`` no-op jobs on the Redis at ``url``: jobs/s and the CPU seconds of each node."""
    from django.db import connection
    from django.test import override_settings

    from jobs import JobSpec, enqueue_many
    from jobs.broker import get_broker, reset_broker
    from jobs.broker.heartbeat import live_workers
    from jobs.models import Job, Status

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE jobs_job CASCADE")
    with override_settings(REDIS_URL=url):
        reset_broker()
        pool = _pool(url, queues, log)
        try:
            _wait(lambda: len(live_workers(get_broker())) >= 2, 60, "two live worker processes")
            specs = [JobSpec("bench_noop", queue=queues[i % len(queues)]) for i in range(n)]
            before = _cpu(ports)
            began = time.monotonic()
            enqueue_many(specs)
            _wait(lambda: Job.objects.filter(status=Status.COMPLETED).count() >= n, 600, f"{n} jobs completed")
            seconds = time.monotonic() - began
            after = _cpu(ports)
        finally:
            pool.terminate()
            pool.wait(60)
            reset_broker()
    return {"jobs_per_s": n / seconds, "redis_cpu_s": [round(b - a, 2) for a, b in zip(before, after, strict=True)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=5000, help="jobs per drain")
    parser.add_argument("--runs", type=int, default=3, help="drains per target")
    parser.add_argument("--queues", type=int, default=6, help="queues the jobs spread over")
    parser.add_argument("--failovers", type=int, default=3, help="failovers each through Sentinel and on a cluster")
    args = parser.parse_args()
    from bench.zipline_adapter import _prepare_database

    _prepare_database()
    import django

    django.setup()
    from tests.redis_cluster import Cluster
    from tests.redis_server import RedisServer

    queues = [f"q{i}" for i in range(args.queues)]
    with tempfile.TemporaryDirectory(prefix="zipline-cluster-bench-") as tmp:
        single = RedisServer(Path(tmp) / "single")
        (Path(tmp) / "single").mkdir()
        cluster = Cluster(Path(tmp) / "cluster", masters=3, replicas=0)
        single.start()
        cluster.start()
        try:
            results = _runs(args, queues, single, cluster, Path(tmp) / "pool.log")
        finally:
            cluster.stop()
            single.stop()
        _report(results, args)
        _failovers(args, queues, Path(tmp))


def _failovers(args: argparse.Namespace, queues: list[str], tmp: Path) -> None:
    from bench.failover import cluster_failover, sentinel_failover

    if args.failovers < 1:
        return
    load = os.getloadavg()[0]
    sentinel, promoted, cluster = [], [], []
    for run in range(args.failovers):
        (tmp / f"sentinel-{run}").mkdir()
        sentinel.append(sentinel_failover(tmp / f"sentinel-{run}", tmp / "failover.log"))
        print(f"failover {run + 1} Sentinel: first job completed {sentinel[-1]:.2f} s after the master's death")
        up, first = cluster_failover(tmp / f"cluster-{run}", tmp / "failover.log", queues)
        promoted.append(up)
        cluster.append(first)
        print(f"failover {run + 1} Cluster: replica promoted {up:.2f} s, first job completed {first:.2f} s after")

    def spread(values: list[float]) -> str:
        return f"{min(values):.2f}-{max(values):.2f} s (median {statistics.median(values):.2f})"

    print(
        f"\nfailover, master SIGKILLed under load to the first job completed on the new master, {args.failovers} each:"
    )
    print(f"  Sentinel (down-after-milliseconds 1000): {spread(sentinel)}")
    print(f"  Cluster (cluster-node-timeout 2000): {spread(cluster)}; the replica promoted after {spread(promoted)}")
    print(f"  1-minute load average before and after: {load:.2f}, {os.getloadavg()[0]:.2f}")


def _runs(args: argparse.Namespace, queues: list[str], single: Any, cluster: Any, log: Path) -> dict[str, list[Any]]:
    results: dict[str, list[Any]] = {"one node": [], "cluster": []}
    load = os.getloadavg()[0]
    for run in range(args.runs):
        for name in ("one node", "cluster") if run % 2 == 0 else ("cluster", "one node"):
            if name == "one node":
                result = drain(single.url, [single.port], args.n, queues, log)
            else:
                result = drain(cluster.cluster_url, [node.port for node in cluster.nodes], args.n, queues, log)
            results[name].append(result)
            print(f"run {run + 1} {name}: {result['jobs_per_s']:.0f} jobs/s, Redis CPU s {result['redis_cpu_s']}")
    results["load"] = [load, os.getloadavg()[0]]
    return results


def _report(results: dict[str, list[Any]], args: argparse.Namespace) -> None:
    one = statistics.median(r["jobs_per_s"] for r in results["one node"])
    many = statistics.median(r["jobs_per_s"] for r in results["cluster"])
    print(f"\nno-op drain of {args.n} jobs over {args.queues} queues, median of {args.runs} runs each:")
    print(f"  one node: {one:.0f} jobs/s;  three-master cluster: {many:.0f} jobs/s  ({many / one:.0%} of one node)")
    per_master = [
        statistics.median(column) for column in zip(*(r["redis_cpu_s"] for r in results["cluster"]), strict=True)
    ]
    print(
        f"  Redis CPU per drain: one node {statistics.median(r['redis_cpu_s'][0] for r in results['one node'])} s;"
        f" cluster masters {per_master} s"
    )
    print(f"  1-minute load average before and after: {results['load'][0]:.2f}, {results['load'][1]:.2f}")


if __name__ == "__main__":
    main()
