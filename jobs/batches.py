"""Batches (docs/workflows.md#batches): jobs join one at submit while it is open; once it is closed and
every job has ended, its callbacks are enqueued exactly once.

Exactly once because the decision is one conditional write under the batch row's lock, in the
transaction of the ending that brings ``unended`` to zero (:func:`jobs_ended`, called by
:mod:`jobs.endings` from every path that ends jobs): whichever of several recorders commits last
sees zero and ``finished_at`` still empty; the others see a count above zero, or the batch finished.
A worker killed at that instant ends nothing: its jobs end later (recovery) and decide then. A job
retried by hand counts as not ended again while the batch has not finished (:func:`job_retried`).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import Count, F
from django.db.models.functions import Greatest
from django.utils import timezone

from jobs import batch_sql, endings, insert, prepared, states
from jobs.dispatch import dispatch
from jobs.ids import parse_job_id
from jobs.lifecycle import Status, Verb
from jobs.models import Batch, Job
from jobs.validation import InvalidJob, JobSpec, validate

CALLBACKS = ("on_success", "on_failure", "on_complete")


def check_callback(name: str, value: Any) -> dict[str, Any] | None:
    """A callback: null, or a job's fields (checked now, as a submission would be)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidJob(name, "must be a job: an object with at least a type")
    try:
        validate(JobSpec(**{"type": None, **value}))
    except TypeError as exc:
        raise InvalidJob(name, str(exc)) from None
    except InvalidJob as exc:
        raise InvalidJob(f"{name}.{exc.field}", exc.message) from None
    return dict(value)


def join(batch_id: Any, count: int, field: str = "batch") -> uuid.UUID:
    """``count`` new jobs join the batch (in the caller's transaction, which holds its row until it
    commits); a batch that is closed or does not exist is :class:`InvalidJob` naming ``field``."""
    pk = parse_job_id(batch_id) if isinstance(batch_id, str | uuid.UUID) else None
    if pk is not None and Batch.objects.filter(pk=pk, closed=False).update(unended=F("unended") + count):
        return pk
    if pk is not None and Batch.objects.filter(pk=pk).exists():
        raise InvalidJob(field, f"batch {pk} is closed: no job may join it")
    raise InvalidJob(field, f"no batch {batch_id!r}")


def jobs_ended(per_batch: Mapping[uuid.UUID, int]) -> None:
    """Jobs of these batches ended (batch -> how many), inside the transaction that ended them."""
    for batch_id in sorted(per_batch):
        if _count_down(batch_id, per_batch[batch_id]):
            finish_if_done(batch_id)


# On the recorder's path for every batch of outcomes that holds jobs of a batch: one statement, built once.
_COUNT_DOWN_PG = (
    f"UPDATE {Batch._meta.db_table} SET unended = GREATEST(unended - %s, 0) "  # noqa: S608
    f"WHERE id = %s AND finished_at IS NULL RETURNING unended = 0 AND closed"
)


def _count_down(batch_id: uuid.UUID, ended: int) -> bool:
    """Take ``ended`` jobs off the batch's count (its row locked until the commit); True when the
    batch may have just finished (closed, none left)."""
    if batch_sql.is_postgres():
        return any(done for (done,) in prepared.fetch_all(_COUNT_DOWN_PG, [ended, batch_id], prepare=False))
    live = Batch.objects.filter(pk=batch_id, finished_at__isnull=True)
    live.update(unended=Greatest(F("unended") - ended, 0))
    return live.filter(unended=0, closed=True).exists()


def job_retried(job: Job) -> None:
    """A job of a batch that has not finished was retried by hand: it counts as not ended again."""
    if job.batch_id is not None:
        Batch.objects.filter(pk=job.batch_id, finished_at__isnull=True).update(unended=F("unended") + 1)


def finish_if_done(batch_id: uuid.UUID) -> Batch | None:
    """Enqueue the batch's callbacks if it is closed, every job has ended and it has not finished
    yet; under its row's lock, so only once. Returns the batch when it finished now."""
    batch = Batch.objects.select_for_update().filter(pk=batch_id, closed=True, unended=0, finished_at=None).first()
    if batch is None:
        return None
    counts = counters(batch)
    batch.outcome = "success" if counts[Status.COMPLETED] == counts["total"] else "failure"
    wanted = ["on_success" if batch.outcome == "success" else "on_failure", "on_complete"]
    specs = {name: getattr(batch, name) for name in wanted if getattr(batch, name) is not None}
    jobs = _enqueue(batch, specs)
    batch.callbacks = {name: str(job.pk) for name, job in jobs.items()}
    batch.finished_at = timezone.now()
    batch.save(update_fields=["outcome", "callbacks", "finished_at"])
    transaction.on_commit(partial(_count_finished, batch.outcome))
    return batch


def _count_finished(outcome: str) -> None:
    # Imported at first use, as jobs.dispatch does: a worker pool switches prometheus_client to its
    # multiprocess values after Django has loaded this module, and a metric takes its kind when made.
    from jobs.metrics import BATCHES_FINISHED

    BATCHES_FINISHED.labels(outcome).inc()


def _enqueue(batch: Batch, specs: dict[str, dict[str, Any]]) -> dict[str, Job]:
    """The callback jobs' rows, written in this transaction and pushed to Redis when it commits."""
    now = timezone.now()
    rows, payloads = [], []
    for name, spec in specs.items():
        valid = validate(JobSpec(**{"name": f"batch {batch.pk} {name}", **spec}), now)
        rows.append(insert.new_row(valid, now))
        payloads.append(valid.payload_json)
    if not rows:
        return {}
    insert.insert(rows, payloads)
    jobs = insert.instances(rows)
    transaction.on_commit(lambda: dispatch([job for job in jobs if job.status == Status.PENDING]))
    return dict(zip(specs, jobs, strict=True))


def counters(batch: Batch) -> dict[str, int]:
    """The batch's jobs by state, counted from their rows (exact), with ``total``."""
    rows = Job.objects.filter(batch=batch).order_by().values("status").annotate(n=Count("pk"))
    found = Counter({row["status"]: row["n"] for row in rows})
    return {"total": sum(found.values()), **{str(s): found.get(str(s), 0) for s in Status}}


def cancel(batch_id: uuid.UUID) -> int:
    """Close the batch and cancel every job of it that has not ended (running ones are asked to stop);
    returns how many were cancelled or asked. Call it in a transaction."""
    Batch.objects.filter(pk=batch_id).update(closed=True)
    waiting = list(
        Job.objects.select_for_update().filter(batch_id=batch_id).able_to(Verb.CANCEL).values_list("pk", flat=True)
    )
    now = timezone.now()
    states.transition(
        Verb.CANCEL, Job.objects.filter(pk__in=waiting), completed_at=now, updated_at=now, schedule_at=None
    )
    asked = states.transition(
        Verb.REQUEST_CANCEL, Job.objects.filter(batch_id=batch_id, cancel_requested=False), cancel_requested=True
    )
    endings.after_jobs_ended(waiting)
    finish_if_done(batch_id)
    return len(waiting) + asked
