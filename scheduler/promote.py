"""Promotion: delayed and retrying jobs whose due time came move to their queue's ready set.

Workers' claim script promotes too, but busy workers don't claim, so the scheduler promotes as well.
Each step is one ``promote.lua`` call (ZRANGEBYSCORE + ZADD + ZREM in one script), so with any number of
schedulers and workers each due job moves exactly once; a step moves at most ``batch`` jobs so a burst
of millions never blocks Redis. Due times are judged by the Redis clock inside the script.

The moved rows are then marked pending (:func:`jobs.states.mark_promoted`). That write is only
bookkeeping: a worker may claim a due ``scheduled``/``retrying`` row directly, and if the scheduler dies
between the two, the reconciler marks the rows later.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import DatabaseError

from jobs import states
from jobs.broker import Broker

logger = logging.getLogger("zipline.scheduler")


@dataclass
class PromoteReport:
    promoted: list[str] = field(default_factory=list)
    next_due: float | None = None  # seconds until the next delayed job is due, over all queues
    more: bool = False  # a full batch moved and the time budget ran out: call again at once


def promote(broker: Broker, batch: int, queues: Iterable[str] | None = None, budget: float = 1.0) -> PromoteReport:
    """Promote due jobs on every queue, one bounded step at a time, for at most ``budget`` seconds."""
    report = PromoteReport()
    deadline = time.monotonic() + budget
    for queue in sorted(broker.queue_names() if queues is None else queues):
        while True:
            moved, next_due_ms = broker.promote_due(queue, batch)
            if moved:
                report.promoted.extend(moved)
                marked = _mark(queue, moved)
                logger.info("promoted due jobs", extra={"queue": queue, "count": len(moved), "marked_pending": marked})
            if next_due_ms is not None:
                seconds = next_due_ms / 1000.0
                report.next_due = seconds if report.next_due is None else min(report.next_due, seconds)
            if len(moved) < batch:
                break
            if time.monotonic() > deadline:
                report.more = True
                break
    return report


def _mark(queue: str, job_ids: list[str]) -> int:
    from scheduler.reconcile import job_uuids

    try:
        return states.mark_promoted(list(job_uuids(job_ids)))
    except DatabaseError as exc:
        logger.warning(
            "could not mark promoted jobs pending; the reconciler will",
            extra={"queue": queue, "count": len(job_ids), "error": str(exc)},
        )
        return 0
