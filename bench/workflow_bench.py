"""Workflows and batches (issue 15): a chain of 100 jobs against 100 x (single-job latency p50 + 2 ms),
a 1,000-job workflow accepted in one request in under 1 s, and a drain of 10,000 jobs in a batch
within 10 % of the same drain without one.

Run: ``.venv/bin/python bench/workflow_bench.py`` (``--chain 20 --flow 200`` for a quick look). It uses a
database of its own (``zipline_workflow_bench``, created and migrated here), Redis database 14 under
the key prefix ``zipbench``, and ``runworkers --processes 2`` with ZipLine's defaults (info logs, one line
a job, to ``bench/results/logs/``; metrics on; the default concurrency); it prints one JSON line per figure. The jobs are ``process_data`` on one item (a no-op in effect).

* latency: ``--single`` jobs submitted one at a time, each once the one before completed; a job's
  latency is its row's ``completed_at - created_at`` (both stamped on this machine), so the harness's
  polling is not in it.
* chain: one workflow ``chain(...)`` of ``--chain`` jobs; its time is the last job's ``completed_at``
  minus the first's ``created_at``. Target: ``chain x (p50 + 2 ms)``.
* accept: ``POST /api/v1/workflows`` with ``--flow`` jobs (one root, the rest its children), through
  Django's whole stack in this process (middleware, token auth, the view), without a socket; the
  median of ``--runs``. Target: under 1 s.
* batch: ``--drain`` jobs queued (with or without a batch with an ``on_complete`` callback), then the
  pool started; the drain's time is the last job's ``completed_at`` minus
  the first ``started_at`` (start-up left out). Plain and batch alternate, ``--runs`` each; the
  medians are compared. Target: the batch's within 10 %.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.enqueue_bench import clear, setup_environment  # noqa: E402 - after the path

DB_NAME = "zipline_workflow_bench"
NOOP = {"type": "process_data", "payload": {"data_size": 1, "operation": "sort"}}


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"workflow_bench: timed out waiting for {what}")
        time.sleep(0.005)


def latency_p50(count: int) -> float:
    """The median submit-to-completion latency (ms) of jobs submitted one at a time."""
    from jobs import enqueue
    from jobs.models import Job

    latencies = []
    for _ in range(count):
        job = enqueue(NOOP["type"], NOOP["payload"])
        wait_until(lambda pk=job.pk: Job.objects.filter(pk=pk).finished().exists(), 30, "a single job")
        created, completed = Job.objects.values_list("created_at", "completed_at").get(pk=job.pk)
        assert completed is not None
        latencies.append((completed - created).total_seconds() * 1000)
    return statistics.median(latencies)


def chain_ms(length: int) -> float:
    """How long a chain of ``length`` jobs takes from its submission to its last job's completion (ms)."""
    from jobs import chain, workflow
    from jobs.models import Job

    flow = workflow(chain(*({**NOOP, "ref": f"c{i}"} for i in range(length))))
    jobs = Job.objects.filter(workflow=flow)
    wait_until(lambda: jobs.finished().count() == length, 60 + length, "the chain")
    first = min(jobs.values_list("created_at", flat=True))
    last = max(t for t in jobs.values_list("completed_at", flat=True) if t is not None)
    assert not jobs.exclude(pk__in=jobs.finished().filter(status="completed").values("pk")).exists()
    return (last - first).total_seconds() * 1000


def accept_seconds(size: int, runs: int) -> float:
    """The median time of ``POST /api/v1/workflows`` with ``size`` jobs (s)."""
    from django.contrib.auth.models import User
    from rest_framework.test import APIClient

    from jobs.tokens import create_token

    user = User.objects.filter(username="bench").first() or User.objects.create_superuser("bench")
    api = APIClient(SERVER_NAME="localhost")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {create_token(user)}")
    body = {
        "jobs": [{**NOOP, "ref": "root"}] + [{**NOOP, "ref": f"j{i}", "depends_on": ["root"]} for i in range(size - 1)]
    }
    times = []
    for _ in range(runs):
        clear()
        started = time.perf_counter()
        answer = api.post("/api/v1/workflows", body, format="json")
        times.append(time.perf_counter() - started)
        if answer.status_code != 201:
            raise SystemExit(f"workflow_bench: {answer.status_code} {answer.content[:300]!r}")
    return statistics.median(times)


def drain_seconds(size: int, in_batch: bool) -> float:
    """How long two worker processes take to drain ``size`` queued jobs, in a batch or not (s)."""
    from jobs import close_batch, create_batch, enqueue_many
    from jobs.models import Job

    clear()
    batch = create_batch("bench", open=True, on_complete=NOOP) if in_batch else None
    extra = {"batch": str(batch.pk)} if batch is not None else {}
    for start in range(0, size, 1000):
        enqueue_many([{**NOOP, **extra} for _ in range(min(1000, size - start))])
    if batch is not None:
        close_batch(batch.pk)
    jobs = Job.objects.filter(batch=batch) if batch is not None else Job.objects.all()
    workers = start_workers("drain")
    try:
        wait_until(lambda: jobs.finished().count() >= size, 600, "the drain")
    finally:
        workers.terminate()
        workers.wait(30)
    first = min(t for t in jobs.values_list("started_at", flat=True) if t is not None)
    last = max(t for t in jobs.values_list("completed_at", flat=True) if t is not None)
    return (last - first).total_seconds()


def drains(args: argparse.Namespace) -> dict[str, Any]:
    """Plain and batch drains alternated, ``--runs`` each: the medians and their ratio."""
    plain, batch = [], []
    for _ in range(args.runs):
        plain.append(drain_seconds(args.drain, False))
        batch.append(drain_seconds(args.drain, True))
    p, b = statistics.median(plain), statistics.median(batch)
    return {
        "workload": "batch_drain",
        "jobs": args.drain,
        "plain_s": round(p, 2),
        "batch_s": round(b, 2),
        "ratio": round(b / p, 3),
        "target": 1.10,
        "met": b <= 1.10 * p,
        "runs": args.runs,
    }


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--single", type=int, default=50, help="jobs for the latency p50 (default 50)")
    parser.add_argument("--chain", type=int, default=100, help="jobs in the chain (default 100)")
    parser.add_argument("--flow", type=int, default=1000, help="jobs in the accepted workflow (default 1000)")
    parser.add_argument("--drain", type=int, default=10_000, help="jobs drained with and without a batch (0: skip)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--database", default=DB_NAME, help=f"the bench's own database (default {DB_NAME})")
    return parser.parse_args()


def start_workers(name: str) -> subprocess.Popen[bytes]:
    """``runworkers --processes 2`` with ZipLine's defaults, as a user runs it: the bench's own process logs at
    warning (``setup_environment``), its workers at the default level, their lines to a file."""
    env = {key: value for key, value in os.environ.items() if key != "JQS_LOG_LEVEL"}
    logs = ROOT / "bench" / "results" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"workflow_{name}_workers.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "manage.py", "runworkers", "--processes", "2"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def with_workers(args: argparse.Namespace) -> tuple[float, float]:
    """The latency p50 and the chain's time, on the same pool."""
    workers = start_workers("chain")
    try:
        return latency_p50(args.single), chain_ms(args.chain)
    finally:
        workers.terminate()
        workers.wait(30)


def main() -> None:
    args = arguments()
    os.environ.setdefault("JQS_ALLOWED_HOSTS", "localhost")
    setup_environment(args, args.database)
    clear()
    load = os.getloadavg()[0]
    p50, chain = with_workers(args)
    accept = accept_seconds(args.flow, args.runs)
    batch = drains(args) if args.drain else None
    clear()
    target = args.chain * (p50 + 2)
    figures = [
        {"workload": "single_latency", "p50_ms": round(p50, 2)},
        {
            "workload": "chain",
            "jobs": args.chain,
            "ms": round(chain, 1),
            "target_ms": round(target, 1),
            "met": chain < target,
        },
        {
            "workload": "accept_workflow",
            "jobs": args.flow,
            "seconds": round(accept, 3),
            "target": 1.0,
            "met": accept < 1.0,
        },
    ]
    if batch is not None:
        figures.append(batch)
    for figure in figures:
        print(json.dumps({**figure, "load_before": round(load, 1), "load_after": round(os.getloadavg()[0], 1)}))


if __name__ == "__main__":
    main()
