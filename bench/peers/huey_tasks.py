"""Huey instance and tasks: RedisHuey on the bench db (blocking BRPOP dequeue, its default)."""

from __future__ import annotations

from huey import RedisHuey

from bench.common import REDIS_URL, job_noop, job_redis, job_sleep, job_stamp

huey = RedisHuey("bench", url=REDIS_URL)


@huey.task()
def noop() -> None:
    """No-op job."""
    job_noop(job_redis())


@huey.task()
def sleep(seconds: float) -> None:
    """Sleeping job."""
    job_sleep(job_redis(), seconds)


@huey.task()
def stamp(enqueued_at: float) -> None:
    """Latency job."""
    job_stamp(job_redis(), enqueued_at)
