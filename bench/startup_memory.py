"""Start-up time and memory of ``manage.py runworkers`` with ZipLine's defaults (info logs, JSON, metrics on).

Run: ``make bench-startup`` (or ``.venv/bin/python bench/startup_memory.py --runs 3 --n 10000``). It runs on a
PostgreSQL cluster and a redis-server of its own (``bench/private_servers.py``, on free ports), so that it
neither collides with nor counts anyone else's benchmark, and reports:

* start-up, ``--runs`` times (median, min, max): from just before ``manage.py runworkers`` is started to the
  first job's start (its body notes the time; the job waited in the queue before the pool started), and to
  its completion, and the CPU time the supervisor and the busiest worker had used by then;
* the modules each process loaded (``ZIPLINE_MODULES_REPORT_DIR``, written by each process as it exits), and
  whether a worker loaded any of the API's, the admin's or the dashboard's;
* memory after draining ``--n`` no-op jobs: the pool's PSS (supervisor and workers), each process's RSS and
  private memory, each worker's threads, and where a worker's resident memory goes (its mappings grouped by
  file, heap and anonymous memory).

The project's modules are compiled first (``compileall`` into their ``__pycache__``, which git ignores), as the
image does at build time: with ``PYTHONDONTWRITEBYTECODE`` set (the Makefile sets it) and no ``.pyc`` files,
every start would compile them again. Timings depend on the machine's load (the 1-minute load average is printed beside them); module counts and
bytes much less.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import BULK_BATCH, harness_redis, read_done, read_first_start, wait_for  # noqa: E402
from bench.private_servers import PrivatePostgres, PrivateRedis  # noqa: E402
from bench.proc_memory import KIB, MIB, cpu_seconds, rollup, smaps_groups, top_mappings  # noqa: E402
from bench.procs import kill_trees, spawn, tree  # noqa: E402

#: Modules the workers must not load (tests/test_workers_lean.py asserts these and more).
FORBIDDEN: tuple[str, ...] = ("rest_framework", "drf_spectacular", "jobs.admin", "jobs.dashboard", "jobs.api")
FORBIDDEN += ("django.contrib.admin", "django.db.migrations.executor", "jobs.migrations", "scheduler.migrations")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _worker_env(report_dir: str) -> dict[str, str]:
    """ZipLine's defaults for logging and metrics, spelled out (the bench settings keep them too, but a
    caller's environment might not), and a free metrics port; the private servers are in ``os.environ``
    (:func:`_use_servers`)."""
    return {
        "DJANGO_SETTINGS_MODULE": "bench.zipline_settings",
        "JQS_LOG_LEVEL": "info",
        "JQS_LOG_FORMAT": "json",
        "JQS_METRICS_ENABLED": "true",
        "JQS_METRICS_HOST": "127.0.0.1",
        "JQS_METRICS_PORT": str(_free_port()),
        "ZIPLINE_MODULES_REPORT_DIR": report_dir,
    }


class Pool:
    """One ``manage.py runworkers`` process tree, stopped (SIGTERM, then SIGKILL) on the way out."""

    def __init__(self, processes: int, report_dir: str, log: Path) -> None:
        argv = [sys.executable, "manage.py", "runworkers", "--processes", str(processes)]
        self.started = time.time()
        self.proc = spawn(argv, _worker_env(report_dir), log)

    def workers(self) -> list[int]:
        return sorted(tree([self.proc.pid]) - {self.proc.pid})

    def stop(self) -> None:
        kill_trees([self.proc.pid], grace=20.0)
        self.proc.wait()

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Jobs:
    """Enqueues the benchmark's no-op jobs on the private servers, through ZipLine's public API."""

    def __init__(self) -> None:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=os.environ, check=True)
        import django

        django.setup()

    def reset(self) -> None:
        from django.db import connection

        harness_redis(os.environ["BENCH_REDIS_URL"]).flushdb()
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE jobs_job CASCADE")

    def enqueue_noop(self) -> None:
        from jobs import enqueue

        enqueue("bench_noop")

    def enqueue_noop_bulk(self, count: int) -> None:
        from jobs import JobSpec, enqueue_many

        enqueue_many([JobSpec("bench_noop") for _ in range(count)])


def _use_servers(pg: PrivatePostgres, redis: PrivateRedis) -> None:
    """Point this process, and the pools it starts (their environment is this one's), at the private servers."""
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench.zipline_settings",
            "JQS_DATABASE_URL": pg.url,
            "JQS_REDIS_URL": redis.url,
            "BENCH_REDIS_URL": redis.url,  # the no-op job's body counts itself there
        }
    )


def _harness() -> Any:
    return harness_redis(os.environ["BENCH_REDIS_URL"])


def startup_run(driver: Jobs, processes: int, report_dir: str, log: Path) -> dict[str, float]:
    """One cold start: a job waits in the queue, the pool starts; seconds to its start and to its end.

    Also the CPU time the supervisor and each worker had used by then (the supervisor's start-up and
    imports before it forks; a worker's own start, its first claim and the job): the wall-clock figures
    grow with the machine's load, these much less.
    """
    driver.reset()
    driver.enqueue_noop()
    r = _harness()
    with Pool(processes, report_dir, log) as pool:
        done_at = wait_for(lambda: read_done(r), 1, timeout=60)
        cpu = cpu_seconds(pool.proc.pid)
        workers = [cpu_seconds(pid) for pid in pool.workers()]
        first = read_first_start(r) or done_at
        return {
            "first_job_started_s": first - pool.started,
            "first_job_completed_s": done_at - pool.started,
            "supervisor_cpu_s": cpu,
            "worker_cpu_s": max(workers, default=0.0),
        }


def _wait_recorded(n: int, timeout: float = 120.0) -> None:
    """Until every job's row is recorded as completed (the recorder may trail the jobs' own counter)."""
    from jobs.models import Job, Status

    deadline = time.monotonic() + timeout
    while Job.objects.filter(status=Status.COMPLETED).count() < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {n} jobs recorded as completed after {timeout:.0f}s")
        time.sleep(0.2)


def _idle_private_mib(pool: Pool, processes: int, r: Any) -> list[float]:
    """The workers' own memory (MiB) once all have published their first heartbeat, before any job."""
    deadline = time.monotonic() + 60
    while r.zcard("zipbench:workers") < processes or len(pool.workers()) < processes:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {processes} workers up after 60 s")
        time.sleep(0.05)
    rollups = [rollup(pid) for pid in pool.workers()]
    return [(w["Private_Clean"] + w["Private_Dirty"]) / MIB for w in rollups]


def memory_run(driver: Jobs, processes: int, n: int, report_dir: str, log: Path) -> dict[str, Any]:
    """Drain ``n`` no-op jobs, then measure the pool's memory."""
    driver.reset()
    r = _harness()
    with Pool(processes, report_dir, log) as pool:
        idle = _idle_private_mib(pool, processes, r)
        for first in range(0, n, BULK_BATCH):
            driver.enqueue_noop_bulk(min(BULK_BATCH, n - first))
        started = time.monotonic()
        wait_for(lambda: read_done(r), n, timeout=600)
        _wait_recorded(n)
        drain_s = time.monotonic() - started
        supervisor, workers = rollup(pool.proc.pid), {pid: rollup(pid) for pid in pool.workers()}
        threads = [len(os.listdir(f"/proc/{pid}/task")) for pid in workers]
        detail = smaps_groups(min(workers)) if workers else {}
    return {
        "drain_s": drain_s,
        "worker_private_idle_mib": idle,
        "pool_pss_mib": (supervisor["Pss"] + sum(w["Pss"] for w in workers.values())) / MIB,
        "supervisor_rss_mib": supervisor["Rss"] / MIB,
        "supervisor_pss_mib": supervisor["Pss"] / MIB,
        "supervisor_private_mib": (supervisor["Private_Clean"] + supervisor["Private_Dirty"]) / MIB,
        "worker_rss_mib": [w["Rss"] / MIB for w in workers.values()],
        "worker_pss_mib": [w["Pss"] / MIB for w in workers.values()],
        "worker_private_mib": [(w["Private_Clean"] + w["Private_Dirty"]) / MIB for w in workers.values()],
        "worker_threads": threads,
        "worker_mappings_mib": top_mappings(detail),
    }


def _package(name: str) -> str:
    """The group a module is counted in: ``django.contrib.auth``, ``django.db``, or its top package."""
    parts = name.split(".")
    if name.startswith("django.contrib."):
        return ".".join(parts[:3])
    if parts[0] == "django":
        return ".".join(parts[:2])
    return parts[0]


def code_by_package(names: list[str], top: int = 15) -> list[tuple[str, int, int]]:
    """(package, modules, KiB of compiled code) of the modules in ``names``, largest first.

    The size of a module's ``.pyc`` (its source's if none) stands for its code objects, which are most
    of what importing it costs in memory; built-in and extension modules are left out.
    """
    kib: Counter[str] = Counter()
    count: Counter[str] = Counter()
    for name in names:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        origin = spec.origin if spec else None
        if not origin or not origin.endswith(".py"):
            continue
        cached = Path(importlib.util.cache_from_source(origin))
        kib[_package(name)] += (cached if cached.exists() else Path(origin)).stat().st_size
        count[_package(name)] += 1
    return [(package, count[package], size // KIB) for package, size in kib.most_common(top)]


def module_report(report_dir: str) -> dict[str, Any]:
    """Modules each kind of process loaded (from the last run's reports), and the forbidden ones a worker had."""
    counts: dict[str, list[int]] = {"supervisor": [], "worker": []}
    forbidden: set[str] = set()
    worker: list[str] = []
    for path in sorted(Path(report_dir).glob("*.txt")):
        role = path.name.split("-", 1)[0]
        names = path.read_text().split()
        counts.setdefault(role, []).append(len(names))
        if role == "worker":
            forbidden |= {name for name in names if name.startswith(FORBIDDEN)}
            worker = names
    return {
        "modules_loaded": counts,
        "worker_forbidden_modules": sorted(forbidden),
        "worker_code_by_package": code_by_package(worker),
    }


# Run in a fresh interpreter as ``manage.py runworkers`` would run it: its RSS after each step of the
# supervisor's start-up, up to the fork.
_IMPORT_STEPS = """
import json, sys
sys.argv = ["manage.py", "runworkers"]
def rss():
    lines = open("/proc/self/smaps_rollup").read().splitlines()[1:]
    return next(int(line.split()[1]) for line in lines if line.startswith("Rss:")) / 1024
steps = [("interpreter", rss(), len(sys.modules))]
def step(name):
    steps.append((name, rss(), len(sys.modules)))
import zipline_site.config; step("ZipLine's configuration")
import django.db.models; step("django.db.models")
import psycopg; step("psycopg (with libpq and OpenSSL)")
import redis; step("redis-py")
import django; django.setup(); step("django.setup(): the core apps, processors")
from workers.management.commands import runworkers; step("runworkers and the worker's modules")
from workers import metrics, metrics_server; step("metrics (prometheus_client)")
from jobs.db_checks import migrations_problem; migrations_problem(); step("the pre-flight's migration check")
print(json.dumps(steps))
"""


def import_steps() -> list[tuple[str, float, int]]:
    """(step, RSS in MiB after it, modules loaded) of the supervisor's start-up, in a process of its own."""
    env = {**os.environ, **_worker_env(tempfile.gettempdir()), "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_STEPS], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return [(name, rss, modules) for name, rss, modules in json.loads(out.stdout.splitlines()[-1])]


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def compile_project() -> None:
    """Compile ZipLine's own modules ahead, as the image does (the Dockerfile's ``compileall``)."""
    packages = ["jobs", "workers", "scheduler", "zipline_site", "bench"]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *packages], cwd=ROOT, check=True, capture_output=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    compile_project()

    log = ROOT / "bench/results/logs/startup_memory.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    driver = Jobs()
    load_before = os.getloadavg()[0]
    runs: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as report_dir:
        for _ in range(args.runs):
            for stale in Path(report_dir).glob("*.txt"):
                stale.unlink()
            runs.append(startup_run(driver, args.processes, report_dir, log))
        modules = module_report(report_dir)
        memory = memory_run(driver, args.processes, args.n, report_dir, log)
    return {
        "processes": args.processes,
        "jobs_drained": args.n,
        "load_1min_before": load_before,
        "load_1min_after": os.getloadavg()[0],
        "first_job_started_s": _summary([run["first_job_started_s"] for run in runs]),
        "first_job_completed_s": _summary([run["first_job_completed_s"] for run in runs]),
        "supervisor_cpu_s": _summary([run["supervisor_cpu_s"] for run in runs]),
        "worker_cpu_s": _summary([run["worker_cpu_s"] for run in runs]),
        **modules,
        **memory,
        "supervisor_import_steps": import_steps(),
    }


def _print(result: dict[str, Any]) -> None:
    started, completed = result["first_job_started_s"], result["first_job_completed_s"]
    print(f"load average (1 min): {result['load_1min_before']:.2f} before, {result['load_1min_after']:.2f} after")
    for label, figures in (
        ("first job started", started),
        ("first job completed", completed),
        ("supervisor CPU time by then", result["supervisor_cpu_s"]),
        ("the busiest worker's CPU time by then", result["worker_cpu_s"]),
    ):
        print(f"{label}: median {figures['median']:.3f} s (min {figures['min']:.3f}, max {figures['max']:.3f})")
    print(f"modules loaded: {result['modules_loaded']}; forbidden in a worker: {result['worker_forbidden_modules']}")
    print("a worker's modules by package (modules, KiB of compiled code):")
    for package, modules, kib in result["worker_code_by_package"]:
        print(f"    {package:<32} {modules:4} {kib:6}")
    print("the supervisor's start-up, step by step (RSS after it, modules loaded):")
    previous = 0.0
    for name, rss, modules in result["supervisor_import_steps"]:
        print(f"    {name:<44} {rss:6.1f} MiB (+{rss - previous:5.1f}) {modules:5}")
        previous = rss
    idle = ", ".join(f"{value:.1f}" for value in result["worker_private_idle_mib"])
    print(f"workers' own memory when started, before any job: {idle} MiB")
    print(
        f"after draining {result['jobs_drained']} no-op jobs (done {result['drain_s']:.1f} s after the last enqueue):"
    )
    print(f"  pool PSS {result['pool_pss_mib']:.1f} MiB (supervisor {result['supervisor_pss_mib']:.1f})")
    print(f"  supervisor RSS {result['supervisor_rss_mib']:.1f} MiB, private {result['supervisor_private_mib']:.1f}")
    for rss, pss, private, threads in zip(
        result["worker_rss_mib"],
        result["worker_pss_mib"],
        result["worker_private_mib"],
        result["worker_threads"],
        strict=True,
    ):
        print(f"  worker RSS {rss:.1f} MiB, PSS {pss:.1f}, private {private:.1f}; {threads} threads")
    print("  one worker's resident memory by mapping (MiB):")
    for row in result["worker_mappings_mib"]:
        rss, pss, private = row.get("Rss", 0), row.get("Pss", 0), row.get("Private", 0)
        print(f"    {row['mapping']:<40} Rss {rss:7.2f}  Pss {pss:7.2f}  private {private:7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="cold starts timed (default 3)")
    parser.add_argument("--n", type=int, default=10_000, help="no-op jobs drained before memory is read")
    parser.add_argument("--processes", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the summary")
    args = parser.parse_args()
    os.chdir(ROOT)
    with PrivatePostgres() as pg, PrivateRedis() as redis:
        _use_servers(pg, redis)
        result = run(args)
    print(json.dumps(result)) if args.json else _print(result)


if __name__ == "__main__":
    main()
