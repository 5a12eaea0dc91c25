"""Enqueue through Django's Tasks framework (ZipLine's backend) against ``jobs.enqueue``, on PostgreSQL + Redis.

Run: ``make bench-tasks`` (or ``.venv/bin/python bench/tasks_bench.py --jobs 3000 --runs 5``). Both write
the same row (type ``django_task``, the same payload), committed before the call returns, and push its id
to Redis; the difference is the framework's cost: validating the task, normalizing its arguments, the
``TaskResult`` and the ``task_enqueued`` signal. Each run alternates chunks of the two (100 each by
default), so that both see the same machine. Besides throughput it reports this process's CPU time per
call, which the machine's other load disturbs much less than the round trips to PostgreSQL and Redis.
Its own database ``zipline_tasks_bench``, Redis db 10 under the key prefix ``zipbench``; prints one
JSON line per figure, then the ratio against the target (within 10 %).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.enqueue_bench import clear, setup_environment  # noqa: E402

PAYLOAD_TASK = "bench.zipline_app.tasks.bench_noop"


def jobs_enqueue(first: int, count: int) -> tuple[float, float]:
    """Seconds (wall, CPU) for ``count`` calls of ``jobs.enqueue`` writing the row a task's enqueue writes."""
    from jobs import enqueue

    started, cpu = time.perf_counter(), time.process_time()
    for i in range(first, first + count):
        payload = {"task": PAYLOAD_TASK, "args": [i, "x"], "kwargs": {}, "backend": "default"}
        enqueue("django_task", payload, name=PAYLOAD_TASK)
    return time.perf_counter() - started, time.process_time() - cpu


def task_enqueue(first: int, count: int) -> tuple[float, float]:
    """Seconds (wall, CPU) for ``count`` calls of ``bench_noop.enqueue`` through ZipLine's backend."""
    from bench.zipline_app.tasks import bench_noop

    started, cpu = time.perf_counter(), time.process_time()
    for i in range(first, first + count):
        bench_noop.enqueue(i, "x")
    return time.perf_counter() - started, time.process_time() - cpu


def one_run(total: int, chunk: int) -> dict[str, tuple[float, float]]:
    """Each one's throughput (enqueues/s) and CPU time per call (µs), in chunks that alternate (and
    swap which goes first), so that a change in the machine's load falls on both alike."""
    clear()
    spent = {"jobs.enqueue": [0.0, 0.0], "task.enqueue": [0.0, 0.0]}
    for n, first in enumerate(range(0, total, chunk)):
        order = (jobs_enqueue, task_enqueue) if n % 2 == 0 else (task_enqueue, jobs_enqueue)
        for bench in order:
            wall, cpu = bench(first, chunk)
            sums = spent["jobs.enqueue" if bench is jobs_enqueue else "task.enqueue"]
            sums[0] += wall
            sums[1] += cpu
    return {name: (total / wall, cpu / total * 1e6) for name, (wall, cpu) in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=3_000, help="enqueues of each kind per run (default 3000)")
    parser.add_argument("--chunk", type=int, default=100, help="enqueues of one kind before switching (default 100)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/10")
    args = parser.parse_args()
    os.environ["JQS_APPS"] = "bench.zipline_app"  # the task's app: a task job names only an installed app's task
    setup_environment(args, db_name="zipline_tasks_bench")
    one_run(400, 100)  # warm up: connections, imports, prepared statements
    runs = [one_run(args.jobs, args.chunk) for _ in range(args.runs)]
    clear()
    for name in ("jobs.enqueue", "task.enqueue"):
        rates, cpus = [run[name][0] for run in runs], [run[name][1] for run in runs]
        figure = {"workload": name, "jobs_per_second_median": round(statistics.median(rates))}
        figure.update(
            min=round(min(rates)), max=round(max(rates)), cpu_us_per_call_median=round(statistics.median(cpus))
        )
        print(json.dumps(figure))
    ratios = [run["task.enqueue"][0] / run["jobs.enqueue"][0] for run in runs]
    ratio = statistics.median(ratios)
    summary = {"workload": "task.enqueue / jobs.enqueue", "ratio_median": round(ratio, 3)}
    summary.update(ratios=[round(r, 3) for r in ratios], target=0.9, met=ratio >= 0.9)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
