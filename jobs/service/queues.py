"""Queues and statistics for every caller: pause and resume (:mod:`jobs.queues` owns them), the
statistics of a queue, of the system and of the workers, and the live numbers the dashboard draws."""

from __future__ import annotations

from typing import Any

from jobs import queue_limits as _limits
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
    "check_queue_limits",
    "check_queue_name",
    "counts_by_queue",
    "known_queue_names",
    "live_workers",
    "pause_queue",
    "queue_limits",
    "queue_stats",
    "redis_master",
    "resume_queue",
    "set_paused",
    "system_stats",
    "throughput_series",
    "update_queue_limits",
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


def queue_limits(name: str) -> dict[str, Any]:
    """A queue's limits in force and what they hold back now (``GET /api/v1/queues/{name}``)."""
    check_queue_name(name)
    return _limits.state(name)


def update_queue_limits(name: str, changes: Any) -> dict[str, Any]:
    """Set some of a queue's limits (``PATCH /api/v1/queues/{name}``, the admin, the dashboard): a null
    resets one to the configuration's default; a bad value is an ``InvalidJob`` naming the field, and
    nothing is written then. Every worker applies them within a second."""
    check_queue_name(name)
    return _limits.patch(name, changes)


def check_queue_limits(changes: Any) -> None:
    """Raise the ``InvalidJob`` naming the field that :func:`update_queue_limits` would refuse, writing nothing."""
    from jobs.limits import InvalidLimit
    from jobs.validation import InvalidJob

    try:
        _limits.parse_changes(changes)
    except InvalidLimit as exc:
        raise InvalidJob(exc.field, exc.message) from None
