"""Sends jobs whose worker is gone back through their retry policy.

Two callers: the supervisor, the moment a worker process dies (its leases are still in Redis), and
the scheduler's reclaimer, for leases that expired (a host lost, a process frozen). Either way the
row decides: a job still ``running`` at that attempt is charged an attempt lost to the worker and
retried or failed; anything else just loses its stale lease.

A worker also puts back its own claims that did not hold: one whose answer never came (the
connection broke after the commit) and one the database lost in a crash while the job ran.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.db.models import Q

from jobs import states, tally
from jobs.broker import Broker, PushItem, Settlement, due_score
from jobs.dispatch import push_items
from jobs.models import Job, Status
from jobs.states import Recorded

logger = logging.getLogger("zipline.recovery")


def send_on(broker: Broker, queue: str, job_id: str, worker_id: str, reason: str) -> Recorded | None:
    """Record a lost attempt (its lease already gone) and requeue the job if it may retry."""
    recorded = states.record_lost(job_id, worker_id, reason)
    if recorded is None:
        _requeue_if_waiting(broker, job_id)
        return None
    if recorded.status == Status.RETRYING and recorded.due is not None:
        broker.push([PushItem(queue, job_id, recorded.job.priority, due_score(recorded.due))])
    broker.count(queue, tally.of_statuses([recorded.status]).as_counts())
    logger.warning(
        "attempt lost to its worker",
        extra={"job_id": job_id, "queue": queue, "worker": worker_id, "reason": reason, "status": recorded.status},
    )
    return recorded


def _requeue_if_waiting(broker: Broker, job_id: str) -> None:
    """A lease on a row that is waiting (claimed in Redis, never marked running): put the id back."""
    pk = states.parse_id(job_id)
    job = Job.objects.filter(pk=pk).waiting().first() if pk is not None else None
    if job is not None:
        broker.push(push_items([job]))


def requeue_lost_claims(broker: Broker, attempts: Sequence[Job]) -> list[Job]:
    """Attempts whose finish matched nothing because the row never kept their claim: put those
    rows back in Redis; returns them.

    The claim commits without waiting for the WAL flush, so a database crash can undo it while the
    worker runs the job. The row is then waiting, one attempt behind the worker's copy, and its id
    is in no Redis set once the worker settles its lease: without this it would wait for the
    scheduler's reconciler. A row that moved on any other way (reclaimed, cancelled) is left alone.
    """
    behind = Q()
    for job in attempts:
        behind |= Q(pk=job.pk, attempts__lt=job.attempts)
    jobs = list(Job.objects.filter(behind).waiting()) if attempts else []
    if jobs:
        broker.push(push_items(jobs))
        logger.warning("requeued jobs whose claim the database lost", extra={"jobs": [str(j.pk) for j in jobs]})
    return jobs


def hand_back_unstarted(broker: Broker, job_ids: Sequence[str], worker_id: str) -> list[Job]:
    """Claims whose answer never came back (the connection broke): rows this worker marked running
    but never started go back to waiting, uncharged, and into Redis; returns them.

    The worker let go of these leases when the claim failed, so nobody runs a row left ``running``
    under its worker id: without this it would wait for the scheduler's reconciler (which also covers
    a Redis failure between the release here and the push).
    """
    pks = [pk for pk in map(states.parse_id, job_ids) if pk is not None]
    claimed = list(Job.objects.filter(pk__in=pks, worker=worker_id).running()) if pks else []
    released = states.release(claimed)
    if released:
        broker.push(push_items(released))
        logger.warning(
            "handed back jobs whose claim outlived its connection",
            extra={"jobs": [str(j.pk) for j in released], "worker": worker_id},
        )
    return released


def recover_worker(broker: Broker, worker_id: str, reason: str) -> list[Recorded]:
    """Take back every lease a dead worker process held; returns the attempts charged as lost."""
    charged: list[Recorded] = []
    for queue in sorted(broker.queue_names()):
        job_ids = broker.leased_by(queue, worker_id)
        if not job_ids:
            continue
        # Drop the leases first (fenced by the dead worker's id), then let each row decide.
        broker.settle(queue, worker_id, [Settlement(job_id, "ack") for job_id in job_ids])
        for job_id in job_ids:
            recorded = send_on(broker, queue, job_id, worker_id, reason)
            if recorded is not None:
                charged.append(recorded)
    return charged
