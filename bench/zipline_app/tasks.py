"""The Django task bench/tasks_bench.py enqueues (imported once Django is set up). It lives in an installed
app (``JQS_APPS=bench.zipline_app``, set by the bench): a task job may name no other."""

from __future__ import annotations

from jobs.tasks_backend.compat import task


@task()
def bench_noop(n: int, tag: str) -> None:
    return None
