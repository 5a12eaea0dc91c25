"""Expiry: a job not started by its ``expires_at`` never runs and ends ``expired``.

Enforced in two places, so that neither a worker nor the lack of one lets it run:

* where a row would start: the worker's claim (:func:`jobs.states.claim`) marks running only rows
  whose ``expires_at`` has not passed, ends the others ``expired``, and the worker drops their ids
  from Redis;
* a sweep the scheduler runs every second (:func:`sweep`), for the rows nobody claims: a paused
  queue, a queue without a worker, a job still delayed or waiting for its retry. It ends them
  ``expired`` and takes their ids out of Redis, so resuming the queue later runs none of them.

The sweep also deletes unique jobs' claims whose window has passed (:mod:`jobs.uniqueness`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from jobs import states, uniqueness
from jobs.broker import Broker, BrokerUnavailable
from jobs.lifecycle import Verb
from jobs.models import Job

logger = logging.getLogger("zipline.expiry")


@dataclass
class SweepReport:
    expired: list[str] = field(default_factory=list)
    claims_purged: int = 0
    more: bool = False  # a full batch was expired: call again at once


def sweep(broker: Broker, batch: int, now: datetime | None = None) -> SweepReport:
    """Expire up to ``batch`` waiting jobs whose ``expires_at`` has passed, and drop their ids from Redis."""
    now = now or timezone.now()
    report = SweepReport()
    by_queue = expire_due(now, batch)
    for queue, ids in sorted(by_queue.items()):
        report.expired.extend(ids)
        logger.info("expired jobs that were not started in time", extra={"queue": queue, "count": len(ids)})
        try:
            broker.remove(queue, ids)
        except BrokerUnavailable:
            # The rows are what count: a worker that claims one of these ids finds it not runnable
            # and drops it, and the reconciler removes ids whose rows are finished.
            logger.warning("could not remove expired jobs from Redis", extra={"queue": queue, "count": len(ids)})
    report.more = len(report.expired) >= batch
    report.claims_purged = uniqueness.purge_lapsed(now, batch)
    return report


def expire_due(now: datetime, batch: int) -> dict[str, list[str]]:
    """End up to ``batch`` due rows ``expired``; returns their ids by queue.

    Rows another transaction holds (a worker claiming them) are skipped, not waited for: that
    worker's claim judges their expiry itself.
    """
    with transaction.atomic():
        due = (
            Job.objects.order_by()
            .select_for_update(skip_locked=True)
            .able_to(Verb.EXPIRE)
            .filter(expires_at__lte=now)
            .values_list("pk", "queue")[:batch]
        )
        rows = list(due)
        if rows:
            states.expire(Job.objects.filter(pk__in=[pk for pk, _ in rows]), now)
    by_queue: dict[str, list[str]] = defaultdict(list)
    for pk, queue in rows:
        by_queue[queue].append(str(pk))
    return dict(by_queue)
