"""The Django task bench/tasks_bench.py enqueues (imported once Django is set up)."""

from __future__ import annotations

from jobs.tasks_backend.compat import task


@task()
def bench_noop(n: int, tag: str) -> None:
    return None
