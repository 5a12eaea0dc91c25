"""Taking ids out of Redis after the rows changed: the row is what counts, so a Redis that does not
answer is logged and left to the workers (they skip an id whose row is not runnable) and to the
reconciler (it drops ids without rows)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from jobs.broker import BrokerUnavailable, get_broker
from jobs.ids import JobId

logger = logging.getLogger("zipline.service")


def take_out_of_redis(jobs: Iterable[tuple[str, JobId]]) -> None:
    """Remove each ``(queue, id)`` from its queue's ready and delayed sets, one call per queue."""
    by_queue: dict[str, list[str]] = {}
    for queue, pk in jobs:
        by_queue.setdefault(queue, []).append(str(pk))
    if not by_queue:
        return
    try:
        broker = get_broker()
        for queue, ids in by_queue.items():
            broker.remove(queue, ids)
    except BrokerUnavailable:
        logger.warning("could not remove jobs from Redis", extra={"job_ids": sorted(sum(by_queue.values(), []))})
