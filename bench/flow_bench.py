"""Flow control's performance bar (issue 14): ``make bench-flow``, or
``.venv/bin/python bench/flow_bench.py --jobs 10000 --groups 1000 --rated-jobs 5000 --runs 3``.

Three drains of no-op jobs, measured as ``bench/run.py``'s ``drain_noop`` is: the jobs are queued first,
then ``runworkers`` starts, and the time runs from the first job's start (``bench:first``) to the moment
``bench:done`` reaches the count (polled every 5 ms), so process start-up is left out.

* ``plain``: no limit and no group, the path every queue took before flow control. Its ratio to a
  baseline (``--baseline``, jobs/s; by default ZipLine's ``drain_noop`` median in
  ``bench/results/latest.json``, measured before flow control) is bar (a): within 5 %.
* ``groups``: the same count spread over ``--groups`` groups (lanes taking turns, no limit). Its
  ratio to ``plain`` in the same run is bar (b): 70 % or more.
* ``rated``: ``--rated-jobs`` jobs on a queue limited to ``--rate`` (default ``1000/s``, ``--burst`` unset: the default burst users get). Its
  rate, (jobs - 1) / seconds, against the limit is bar (c): within 5 %.

Each run does the three in turn, so a change in the machine's load falls on all of them; the table
gives the medians. Its own database ``zipline_flow_bench`` and Redis database 12 (FLUSHDB'ed), so it
can run beside the other benchmarks. A loaded machine moves every figure: say the load with them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "zipline_flow_bench"
REDIS_URL = os.environ.get("FLOW_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
os.environ["BENCH_REDIS_URL"] = REDIS_URL  # the jobs count themselves there (bench/common.py)
os.environ["JQS_DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.zipline_settings"
sys.path.insert(0, str(ROOT))

from bench.common import harness_redis, read_done, read_first_start, wait_for  # noqa: E402
from bench.procs import kill_trees, spawn  # noqa: E402

QUEUES = {"plain": "flow-plain", "groups": "flow-groups", "rated": "flow-rated"}


def prepare(postgres: str) -> None:
    """A fresh, migrated database of the bench's own; Django set up in this process."""
    for sql in (f"DROP DATABASE IF EXISTS {DB_NAME}", f"CREATE DATABASE {DB_NAME}"):
        subprocess.run(["psql", f"{postgres}/postgres", "-qc", sql], check=True, capture_output=True)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, check=True)
    import django

    django.setup()


def reset() -> None:
    """No job rows, nothing in the bench's Redis database."""
    from django.db import connection

    from jobs.broker import reset_broker

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE jobs_job CASCADE")
    harness_redis(REDIS_URL).flushdb()
    reset_broker()


def enqueue(queue: str, count: int, groups: int) -> None:
    from jobs import JobSpec, enqueue_many

    for first in range(0, count, 1000):
        batch = range(first, min(count, first + 1000))
        enqueue_many([JobSpec("bench_noop", queue=queue, group=f"g{i % groups}" if groups else "") for i in batch])


def drain(queue: str, count: int, processes: int, timeout: float, log: Path) -> float:
    """Seconds from the first job's start to the last one's end, workers started after the enqueue."""
    redis = harness_redis(REDIS_URL)
    argv = [sys.executable, "manage.py", "runworkers", "--processes", str(processes), "--queues", queue]
    proc = spawn(argv, {"JQS_METRICS_ENABLED": "false"}, log)
    try:
        started = time.time()
        finished = wait_for(lambda: read_done(redis), count, timeout)
    finally:
        kill_trees([proc.pid])
        proc.wait()
    return finished - (read_first_start(redis) or started)


def one_run(args: argparse.Namespace, log: Path) -> dict[str, float]:
    """Jobs per second of each drain."""
    from jobs import service

    out: dict[str, float] = {}
    for name, count, groups in (
        ("plain", args.jobs, 0),
        ("groups", args.jobs, args.groups),
        ("rated", args.rated_jobs, 0),
    ):
        reset()
        if name == "rated":
            service.update_queue_limits(QUEUES[name], {"rate_limit": args.rate, "rate_burst": args.burst})
        enqueue(QUEUES[name], count, groups)
        seconds = drain(QUEUES[name], count, args.processes, args.timeout, log)
        out[name] = (count - 1) / seconds if name == "rated" else count / seconds
    return out


def baseline(given: float | None) -> tuple[float | None, str]:
    """The plain drain before flow control: ``--baseline``, else bench/results/latest.json's ZipLine row."""
    if given:
        return given, "--baseline"
    path = ROOT / "bench" / "results" / "latest.json"
    try:
        data: Any = json.loads(path.read_text())
        summary = data["rows"]["zipline"]["summary"]["drain_noop"]["jobs_per_s"]["median"]
        return float(summary), f"{path.relative_to(ROOT)} ({data['meta']['date']})"
    except (OSError, KeyError, ValueError):
        return None, "none"


def table(medians: dict[str, float], args: argparse.Namespace) -> list[str]:
    from jobs.limits import parse_rate

    rate = parse_rate("rate", args.rate)
    limit = rate.count / rate.seconds if rate else 0.0
    base, source = baseline(args.baseline)
    rows = [
        ("(a) no limit vs before", medians["plain"], base, 0.95, f"baseline {base and round(base)} from {source}"),
        (f"(b) {args.groups:,} groups vs plain", medians["groups"], medians["plain"], 0.70, f"{args.jobs:,} jobs"),
        (
            "(c) limited queue vs limit",
            medians["rated"],
            limit,
            0.95,
            f"{args.rate} burst {args.burst or 'default'}, within 5 %",
        ),
    ]
    lines = [f"{'bar':28} {'jobs/s':>9} {'against':>9} {'ratio':>7} {'met':>4}  note", "-" * 78]
    for label, value, against, need, note in rows:
        ratio = value / against if against else float("nan")
        met = ratio >= need if "(c)" not in label else abs(ratio - 1) <= 0.05
        lines.append(f"{label:28} {value:9.0f} {against or 0:9.0f} {ratio:7.3f} {'yes' if met else 'NO':>4}  {note}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs of the plain and the groups drains")
    parser.add_argument("--groups", type=int, default=1_000, help="groups the groups drain spreads them over")
    parser.add_argument("--rated-jobs", type=int, default=5_000, help="jobs of the rate-limited drain")
    parser.add_argument("--rate", default="1000/s", help="the limited queue's rate_limit")
    parser.add_argument(
        "--burst", type=int, help="the limited queue's rate_burst (default: unset, so the rate's default burst)"
    )
    parser.add_argument("--processes", type=int, default=2, help="worker processes (bench/run.py's default)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", type=float, help="the plain drain before flow control, jobs/s")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    prepare(args.postgres)
    log = Path(tempfile.gettempdir()) / "zipline_flow_bench_workers.log"  # the workers' output, if one fails
    load = os.getloadavg()[0]
    runs = [one_run(args, log) for _ in range(args.runs)]
    reset()
    medians = {name: statistics.median(run[name] for run in runs) for name in runs[0]}
    for name in medians:
        print(
            json.dumps(
                {"drain": name, "jobs_per_second_median": round(medians[name]), "runs": [round(r[name]) for r in runs]}
            )
        )
    print(
        f"\nflow control, {args.runs} run(s), {args.processes} worker processes, load average {load:.2f} -> "
        f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    print("\n".join(table(medians, args)))


if __name__ == "__main__":
    main()
