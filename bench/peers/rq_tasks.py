"""RQ jobs. They reuse the job's own Redis connection (db 9), already open in the worker."""

from __future__ import annotations

from redis import Redis
from rq import get_current_job

from bench.common import job_noop, job_sleep, job_stamp


def _conn() -> Redis:
    job = get_current_job()
    assert job is not None
    return job.connection


def noop() -> None:
    """No-op job."""
    job_noop(_conn())


def sleep(seconds: float) -> None:
    """Sleeping job."""
    job_sleep(_conn(), seconds)


def stamp(enqueued_at: float) -> None:
    """Latency job."""
    job_stamp(_conn(), enqueued_at)
