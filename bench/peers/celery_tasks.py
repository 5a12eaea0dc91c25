"""Celery app and tasks: Redis broker on the bench db, no result backend (Celery's default)."""

from __future__ import annotations

from celery import Celery

from bench.common import REDIS_URL, job_noop, job_redis, job_sleep, job_stamp

app = Celery("bench", broker=REDIS_URL)
app.conf.broker_connection_retry_on_startup = True


@app.task(ignore_result=True)
def noop() -> None:
    """No-op job."""
    job_noop(job_redis())


@app.task(ignore_result=True)
def sleep(seconds: float) -> None:
    """Sleeping job."""
    job_sleep(job_redis(), seconds)


@app.task(ignore_result=True)
def stamp(enqueued_at: float) -> None:
    """Latency job."""
    job_stamp(job_redis(), enqueued_at)
