"""Enqueue throughput on PostgreSQL + Redis: ``enqueue_many`` in batches of 1,000, and ``enqueue`` one by one.

Run: ``make bench-enqueue`` (or ``.venv/bin/python bench/enqueue_bench.py --jobs 20000``). It uses a
database of its own (``zipline_enqueue_bench``, created and migrated here) and Redis database 10 under the
key prefix ``zipbench``, and prints one JSON line per figure plus a summary.
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

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "zipline_enqueue_bench"


def setup_environment(args: argparse.Namespace, db_name: str = DB_NAME) -> None:
    """A fresh, migrated database ``db_name``; Redis and Django set up for the bench's process."""
    os.environ.setdefault("JQS_SECRET_KEY", "bench")
    os.environ["JQS_DATABASE_URL"] = f"{args.postgres}/{db_name}"
    os.environ["JQS_REDIS_URL"] = args.redis
    os.environ["JQS_REDIS_KEY_PREFIX"] = "zipbench"
    os.environ["JQS_LOG_LEVEL"] = "warning"
    os.environ["DJANGO_SETTINGS_MODULE"] = "zipline_site.settings"
    subprocess.run(
        ["psql", args.postgres + "/postgres", "-qc", f"DROP DATABASE IF EXISTS {db_name}"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        ["psql", args.postgres + "/postgres", "-qc", f"CREATE DATABASE {db_name}"], check=True, capture_output=True
    )
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, check=True)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def clear() -> None:
    from django.db import connection

    from jobs.broker import get_broker

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE jobs_job CASCADE")
        cursor.execute("VACUUM ANALYZE jobs_job")
    broker = get_broker()
    keys = list(broker.client.scan_iter(match="zipbench:*", count=1000))
    if keys:
        broker.client.delete(*keys)


def bench_enqueue_many(total: int, batch: int) -> float:
    from jobs import JobSpec, enqueue_many

    clear()
    specs = [
        [JobSpec("process_data", {"data_size": 10, "operation": "sort", "n": i}) for i in range(batch)]
        for _ in range(total // batch)
    ]
    started = time.perf_counter()
    for chunk in specs:
        enqueue_many(chunk)
    return total / (time.perf_counter() - started)


def bench_enqueue(total: int) -> float:
    from jobs import enqueue

    clear()
    started = time.perf_counter()
    for i in range(total):
        enqueue("process_data", {"data_size": 10, "operation": "sort", "n": i})
    return total / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs for enqueue_many (default 20000)")
    parser.add_argument("--single", type=int, default=5_000, help="jobs for enqueue (default 5000)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/10")
    args = parser.parse_args()
    setup_environment(args)
    many = [bench_enqueue_many(args.jobs, 1000) for _ in range(args.runs)]
    single = [bench_enqueue(args.single) for _ in range(args.runs)]
    clear()
    for name, values, target in (("enqueue_many_batch_1000", many, 20_000), ("enqueue_single", single, 1_500)):
        print(
            json.dumps(
                {
                    "workload": name,
                    "jobs_per_second_median": round(statistics.median(values)),
                    "min": round(min(values)),
                    "max": round(max(values)),
                    "target": target,
                    "met": statistics.median(values) >= target,
                }
            )
        )


if __name__ == "__main__":
    main()
