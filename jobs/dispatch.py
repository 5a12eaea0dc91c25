"""Hands committed jobs to Redis. Called from ``transaction.on_commit``, so a job's id reaches Redis
only after its row is committed; a rolled-back job never runs.

A failed push is logged and counted, not raised: the row is committed, and the scheduler's
reconciler pushes rows missing from Redis after a grace period.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from jobs.broker import BrokerUnavailable, PushItem, due_score, get_broker
from jobs.ids import id_text
from jobs.limits import lane
from jobs.models import Job

logger = logging.getLogger("zipline.dispatch")


def push_items(jobs: Iterable[Job]) -> list[PushItem]:
    items = []
    lanes: dict[tuple[str, str], str] = {}  # a batch's jobs share a few types and groups
    for job in jobs:
        due_ms = due_score(job.schedule_at) if job.schedule_at is not None else 0
        kind = (job.type, job.group)
        job_lane = lanes.get(kind)
        if job_lane is None:
            job_lane = lanes[kind] = lane(*kind)
        items.append(PushItem(job.queue, id_text(job), job.priority, due_ms, job_lane))
    return items


def dispatch(jobs: Iterable[Job]) -> bool:
    """Push jobs' ids to Redis in one round trip; False (logged) when Redis is unreachable."""
    items = push_items(jobs)
    try:
        get_broker().push(items)
    except BrokerUnavailable as exc:
        from jobs.metrics import DISPATCH_FAILURES

        DISPATCH_FAILURES.inc(len(items))
        logger.warning(
            "dispatch deferred: Redis unavailable; the reconciler will push the jobs",
            extra={"jobs": len(items), "error": str(exc)},
        )
        return False
    return True
