"""Reclaim: leases past their deadline belong to workers that died, hung or lost Redis.

``reclaim.lua`` removes an expired lease atomically and returns it with the id of the worker that
held it, so with several schedulers each lease is reclaimed by exactly one. The job's row then decides
(:func:`jobs.recovery.send_on`, shared with the worker supervisor, which calls
:func:`jobs.states.record_lost`, keyed on ``status='running'`` and the worker):

- still running: the attempt is charged as lost to the worker and the retry policy applies (a retry is
  pushed to the delayed set at its due time; with no retries left the job fails, a poison pill);
- still waiting (the worker died between its Redis claim and its database claim): pushed back;
- already finished, re-claimed or gone: the lease was just left behind and is dropped.

Deadlines are the Redis clock's, never a worker's. If the scheduler dies after removing a lease but
before recording the loss, the row stays ``running`` without a lease; the reconciler gives it a fresh
lease, which expires and is reclaimed again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import DatabaseError

from jobs.broker import Broker, BrokerUnavailable
from jobs.recovery import send_on

logger = logging.getLogger("zipline.scheduler")

LOST_REASON = "worker lost: lease expired"


@dataclass(frozen=True)
class Reclaimed:
    job_id: str
    queue: str
    worker: str
    status: str | None  # the row's new status; None when the lease was just dropped


@dataclass
class ReclaimReport:
    reclaimed: list[Reclaimed] = field(default_factory=list)
    more: bool = False


def reclaim(broker: Broker, batch: int, queues: Iterable[str] | None = None, budget: float = 2.0) -> ReclaimReport:
    """Reclaim expired leases on every queue, ``batch`` per script call, for at most ``budget`` seconds."""
    report = ReclaimReport()
    deadline = time.monotonic() + budget
    for queue in sorted(broker.queue_names() if queues is None else queues):
        while True:
            expired = broker.reclaim_expired(queue, batch)
            for job_id, worker_id in expired:
                report.reclaimed.append(_settle_lost(broker, queue, job_id, worker_id))
            if len(expired) < batch:
                break
            if time.monotonic() > deadline:
                report.more = True
                break
    return report


def _settle_lost(broker: Broker, queue: str, job_id: str, worker_id: str) -> Reclaimed:
    from scheduler.reconcile import job_uuids

    if not list(job_uuids([job_id])):
        logger.warning(
            "dropped expired lease of a malformed job id", extra={"job_id": job_id, "queue": queue, "worker": worker_id}
        )
        return Reclaimed(job_id, queue, worker_id, None)
    try:
        # The row decides; a retry is pushed delayed, a row still waiting (its worker died between the
        # Redis claim and the database claim) goes straight back to its queue.
        recorded = send_on(broker, queue, job_id, worker_id, LOST_REASON)
    except (DatabaseError, BrokerUnavailable) as exc:
        # The lease is gone. A row still running gets a fresh lease from the reconciler and is
        # reclaimed again; a committed retry is pushed by the reconciler.
        logger.error(
            "could not settle a reclaimed lease",
            extra={"job_id": job_id, "queue": queue, "worker": worker_id, "error": str(exc)},
        )
        return Reclaimed(job_id, queue, worker_id, None)
    if recorded is None or recorded.status is None:
        logger.info(
            "dropped expired lease of a job no longer running",
            extra={"job_id": job_id, "queue": queue, "worker": worker_id},
        )
        return Reclaimed(job_id, queue, worker_id, None)
    logger.warning(
        "reclaimed expired lease",
        extra={
            "job_id": job_id,
            "queue": queue,
            "worker": worker_id,
            "attempt": recorded.job.attempt_number,
            "status": recorded.status,
            "due": recorded.due.isoformat() if recorded.due else None,
        },
    )
    return Reclaimed(job_id, queue, worker_id, recorded.status)
