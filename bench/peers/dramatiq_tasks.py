"""Dramatiq broker and actors: RedisBroker on the bench db, default middleware."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from bench.common import REDIS_URL, job_noop, job_redis, job_sleep, job_stamp

broker = RedisBroker(url=REDIS_URL)
dramatiq.set_broker(broker)


@dramatiq.actor
def noop() -> None:
    """No-op job."""
    job_noop(job_redis())


@dramatiq.actor
def sleep(seconds: float) -> None:
    """Sleeping job."""
    job_sleep(job_redis(), seconds)


@dramatiq.actor
def stamp(enqueued_at: float) -> None:
    """Latency job."""
    job_stamp(job_redis(), enqueued_at)
