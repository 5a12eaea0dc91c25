"""Queues and statistics for every caller: pause and resume (:mod:`jobs.queues` owns them), the
statistics of a queue, of the system and of the workers, and the live numbers the dashboard draws."""

from __future__ import annotations

from typing import Any

from jobs import tally
from jobs.broker import BrokerUnavailable, get_broker
from jobs.broker.heartbeat import live_workers as _live_workers
from jobs.queues import (
    STATUSES,
    counts_by_queue,
    queue_stats,
    set_paused,
    system_stats,
    worker_stats,
    workers_summary,
)
from jobs.queues import check_name as check_queue_name
from jobs.queues import pause as pause_queue
from jobs.queues import resume as resume_queue

__all__ = [
    "STATUSES",
    "check_queue_name",
    "counts_by_queue",
    "known_queue_names",
    "live_workers",
    "pause_queue",
    "queue_stats",
    "redis_master",
    "resume_queue",
    "set_paused",
    "system_stats",
    "throughput_series",
    "worker_stats",
    "workers_summary",
]


def live_workers() -> list[dict[str, Any]]:
    """Every worker whose heartbeat is fresh, as it reported itself."""
    return _live_workers(get_broker())


def known_queue_names() -> set[str]:
    """The queues Redis has seen used."""
    return get_broker().queue_names()


def throughput_series(queue: str, minutes: int) -> tuple[list[int], list[int]]:
    """Completed and failed attempts of ``queue`` per minute, the last ``minutes`` minutes, oldest first."""
    broker = get_broker()
    return (
        broker.counter_series(queue, tally.COMPLETED, minutes),
        broker.counter_series(queue, tally.FAILED, minutes),
    )


def redis_master() -> str | None:
    """The master in use when the sentinels choose it (None for a single Redis, or when they do not answer)."""
    try:
        return get_broker().master_address()
    except BrokerUnavailable:
        return None
