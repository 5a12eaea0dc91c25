"""One job at a time: read it, cancel, retry, run now, delete. Every change is a transition of
:mod:`jobs.states` (the row first), and Redis follows once the row commits (``on_commit``).

Ids are taken in any form :func:`jobs.ids.parse_job_id` reads; one that names no job raises
:class:`JobNotFound`, a state that does not allow the action :class:`TransitionError`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import TypeVar

from django.db import transaction
from django.db.models import QuerySet

from jobs import batches, endings, states
from jobs.dispatch import dispatch
from jobs.ids import JobId, parse_job_id
from jobs.models import FINISHED, WAITING, Job, JobQuerySet
from jobs.service.dequeue import take_out_of_redis
from jobs.service.errors import JobNotFound, TransitionError

R = TypeVar("R")


def job_id_of(value: object) -> JobId:
    """The id ``value`` spells, or :class:`JobNotFound` naming it."""
    pk = parse_job_id(value)
    if pk is None:
        raise JobNotFound(value)
    return pk


def find_job(job_id: object) -> Job | None:
    """The job with this id, or None (also for text that is no id)."""
    pk = parse_job_id(job_id)
    return None if pk is None else Job.objects.filter(pk=pk).first()


def get_job(job_id: object) -> Job:
    """The job with this id, or :class:`JobNotFound`."""
    pk = job_id_of(job_id)
    job = Job.objects.filter(pk=pk).first()
    if job is None:
        raise JobNotFound(pk)
    return job


def list_jobs(
    statuses: list[str] | None = None,
    queue: str | None = None,
    job_type: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> JobQuerySet:
    """Jobs matching every filter given (none: all), without their heavy columns; the caller orders and pages."""
    rows = Job.objects.defer("payload", "result", "traceback")
    if statuses:
        rows = rows.in_state(*statuses)
    if queue is not None:
        rows = rows.filter(queue=queue)
    if job_type is not None:
        rows = rows.filter(type=job_type)
    if created_after is not None:
        rows = rows.filter(created_at__gte=created_after)
    if created_before is not None:
        rows = rows.filter(created_at__lt=created_before)
    return rows


def _existing(change: Callable[[JobId], R], job_id: object) -> R:
    """``change`` applied to the job ``job_id`` names; a job gone meanwhile is :class:`JobNotFound` too."""
    pk = job_id_of(job_id)
    try:
        return change(pk)
    except Job.DoesNotExist:
        raise JobNotFound(pk) from None


def cancel(job_id: object) -> Job:
    """Cancel a waiting job, or ask a running one to stop (its worker sees it within a second)."""
    job, dequeue = _existing(states.cancel, job_id)
    if dequeue:
        transaction.on_commit(lambda: dequeue_cancelled(job))
    return job


def dequeue_cancelled(job: Job) -> None:
    """Take a cancelled job's id out of Redis, unless a retry made it wait again in the meantime.

    A retry that commits between the cancel and this removal pushes an id Redis already holds (a
    no-op), and the removal would then strand the waiting row until the reconciler's next pass.
    """
    take_out_of_redis([(job.queue, job.pk)])
    again = Job.objects.filter(pk=job.pk).waiting().first()
    if again is not None:
        dispatch([again])


def retry(job_id: object) -> Job:
    """Run a failed or cancelled job again from a fresh retry budget."""
    job = _existing(states.retry, job_id)
    transaction.on_commit(lambda: dispatch([job]))
    return job


def run_now(job_id: object) -> Job:
    """Make a scheduled or retrying job run at once."""
    job = _existing(states.run_now, job_id)

    def move() -> None:
        take_out_of_redis([(job.queue, job.pk)])
        dispatch([job])

    transaction.on_commit(move)
    return job


#: The actions on one job by the names the dashboard and the admin use.
JOB_ACTIONS: dict[str, Callable[[object], Job]] = {"cancel": cancel, "retry": retry, "run-now": run_now}


def delete_jobs(rows: QuerySet[Job]) -> list[Job]:
    """Delete ``rows`` (with their attempts) and, once that commits, take the waiting ones out of Redis.

    The one deletion of jobs: the API, the admin and the dashboard all come here. Returns the rows
    deleted (id, queue, status, name and type loaded).
    """
    with transaction.atomic():
        found = list(rows.only("id", "queue", "status", "name", "type", "batch_id"))
        if not found:
            return []
        rows.filter(pk__in=[job.pk for job in found]).delete()
        # A live job deleted has ended: for its batch, and for its children (a failed parent).
        live = [job for job in found if job.status not in FINISHED]
        batches.jobs_ended(Counter(job.batch_id for job in live if job.batch_id is not None))
        endings.after_jobs_ended([job.pk for job in live])  # and a wait on one answers 404
        waiting = [(job.queue, job.pk) for job in found if job.status in WAITING]
        transaction.on_commit(partial(take_out_of_redis, waiting))
    return found


def delete_finished(job_id: object) -> None:
    """Delete a finished job (completed, failed, cancelled or expired); any other state raises :class:`TransitionError`."""
    pk = job_id_of(job_id)
    if delete_jobs(Job.objects.filter(pk=pk).finished()):
        return
    job = get_job(pk)
    raise TransitionError(
        pk,
        job.status,
        "deleted",
        f"job {pk} is {job.status}; only a finished job (completed, failed, cancelled or expired) can be deleted",
    )
