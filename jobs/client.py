"""ZipLine's Python API: ``enqueue``, ``enqueue_many``, ``get``, ``cancel``, ``retry``.

Rows are written in the caller's transaction; ids reach Redis when it commits (``on_commit``),
so a job submitted inside a transaction that rolls back never runs. Outside a transaction each
call commits before it returns.
"""

from __future__ import annotations

import copy
import logging
import uuid
from collections.abc import Sequence
from contextlib import nullcontext
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs import insert, states, uniqueness
from jobs.broker import BrokerUnavailable, get_broker
from jobs.dispatch import dispatch
from jobs.idempotency import PYTHON_SCOPE, check_reuse, fingerprint
from jobs.models import Job
from jobs.unique_terms import Uniqueness
from jobs.validation import InvalidJob, JobSpec, validate

logger = logging.getLogger("zipline.client")

__all__ = ["InvalidJob", "JobSpec", "cancel", "enqueue", "enqueue_many", "get", "retry"]


def enqueue(
    type: str,  # noqa: A002 - the seed's field name
    payload: dict[str, Any] | None = None,
    *,
    name: str = "",
    queue: str = "default",
    priority: int = 0,
    schedule_at: datetime | str | None = None,
    delay: float | str | None = None,
    retry: dict[str, Any] | None = None,
    timeout: float | str | None = None,
    idempotency_key: str | None = None,
    unique_for: float | str | None = None,
    unique_key: str | None = None,
    unique_until: str | None = None,
    expires_at: datetime | str | None = None,
    expires_in: float | str | None = None,
) -> Job:
    """Submit one job and return its row. Raises :class:`InvalidJob` and writes nothing on bad input.
    A repeated ``idempotency_key``, or a held unique key (``unique_for``, :mod:`jobs.uniqueness`), returns
    the earlier job and writes nothing; for the latter ``job.duplicate`` is True.
    """
    spec = JobSpec(
        type,
        {} if payload is None else payload,
        name=name,
        queue=queue,
        priority=priority,
        schedule_at=schedule_at,
        delay=delay,
        retry=retry,
        timeout=timeout,
        idempotency_key=idempotency_key,
        unique_for=unique_for,
        unique_key=unique_key,
        unique_until=unique_until,
        expires_at=expires_at,
        expires_in=expires_in,
    )
    return enqueue_idempotent(spec)[0]


def enqueue_idempotent(
    spec: JobSpec, scope: str = PYTHON_SCOPE, *, submitted_by: Any = None, now: datetime | None = None
) -> tuple[Job, bool]:
    """Submit ``spec``; returns (job, created). ``created`` is False for a repeated idempotency key,
    and for a duplicate of a unique job (then ``job.duplicate`` is True).

    Keys are unique within ``scope`` (see :mod:`jobs.idempotency`); a key used before for a different
    submission raises :class:`jobs.idempotency.IdempotencyConflict` and writes nothing. ``submitted_by``
    (a user) is recorded: they see the payload's secrets unmasked (:mod:`jobs.masking`). ``now`` is
    the submission's time (tests drive it).
    """
    now = now or timezone.now()
    valid = validate(spec, now)
    key = valid.fields.get("idempotency_key")
    if key is not None:
        existing = Job.objects.filter(idempotency_scope=scope, idempotency_key=key).first()
        if existing is not None:
            return check_reuse(spec, existing), False
    row = insert.new_row(valid, now)
    row["submitted_by_id"] = None if submitted_by is None else submitted_by.pk
    if key is not None:
        row.update(idempotency_scope=scope, request_fingerprint=fingerprint(spec))
    try:
        # Outside a transaction this is one autocommitted INSERT: one round trip to the database.
        with transaction.atomic() if key is not None or valid.unique else nullcontext():
            holder = None if valid.unique is None else uniqueness.claim(valid.unique, row["id"], now)
            if holder is not None:
                holder.duplicate = True
                return holder, False
            insert.insert([row], [valid.payload_json])
    except IntegrityError:
        existing = Job.objects.filter(idempotency_scope=scope, idempotency_key=key).first() if key else None
        if existing is not None:
            return check_reuse(spec, existing), False
        raise
    [job] = insert.instances([row])
    transaction.on_commit(lambda: dispatch([job]))
    return job, True


def enqueue_many(
    specs: Sequence[JobSpec | dict[str, Any]],
    scope: str = PYTHON_SCOPE,
    *,
    submitted_by: Any = None,
    now: datetime | None = None,
) -> list[Job]:
    """Submit many jobs: all rows in one INSERT, all ids in one Redis pipeline; all or none.
    ``submitted_by`` is recorded as in :func:`enqueue_idempotent`.

    Raises :class:`InvalidJob` with the index of the first bad spec in its field (``jobs[3].type``).
    Idempotency keys are unique within ``scope``; a key used before makes the INSERT fail (IntegrityError).
    A unique job whose key is held (by a stored job, or by an earlier job of the batch) is not written:
    its place in the answer holds the holder, with ``duplicate`` True.
    """
    now = now or timezone.now()
    rows, payloads, wanted = _batch_rows(specs, scope, submitted_by, now)
    if not rows:
        return []
    with transaction.atomic():
        duplicates = uniqueness.claim_many(wanted, now) if wanted else {}
        new = [i for i in range(len(rows)) if i not in duplicates]
        insert.insert([rows[i] for i in new], [payloads[i] for i in new])
        created = dict(zip(new, insert.instances([rows[i] for i in new]), strict=True))
        fresh = list(created.values())
        if fresh:
            transaction.on_commit(lambda: dispatch(fresh))
    return [created[i] if i in created else _duplicate(duplicates[i], created) for i in range(len(rows))]


def _batch_rows(
    specs: Sequence[JobSpec | dict[str, Any]], scope: str, submitted_by: Any, now: datetime
) -> tuple[list[dict[str, Any]], list[str], list[tuple[int, Uniqueness, uuid.UUID]]]:
    """A batch's rows and payloads, and the unique terms of its unique jobs (by index in the batch)."""
    rows, payloads, wanted = [], [], []
    for index, raw in enumerate(specs):
        spec = raw if isinstance(raw, JobSpec) else _spec_from_dict(index, raw)
        try:
            valid = validate(spec, now)
        except InvalidJob as exc:
            raise type(exc)(f"jobs[{index}].{exc.field}", exc.message) from None
        row = insert.new_row(valid, now)
        row["submitted_by_id"] = None if submitted_by is None else submitted_by.pk
        if spec.idempotency_key is not None:
            row.update(idempotency_scope=scope, request_fingerprint=fingerprint(spec))
        if valid.unique is not None:
            wanted.append((index, valid.unique, row["id"]))
        rows.append(row)
        payloads.append(valid.payload_json)
    return rows, payloads, wanted


def _duplicate(holder: Job | int, created: dict[int, Job]) -> Job:
    """A batch's answer for a duplicate: a copy of the job that holds its key, marked duplicate."""
    marked = copy.copy(created[holder] if isinstance(holder, int) else holder)
    marked.duplicate = True
    return marked


def _spec_from_dict(index: int, raw: Any) -> JobSpec:
    if not isinstance(raw, dict):
        raise InvalidJob(f"jobs[{index}]", "must be an object")
    try:
        return JobSpec(**raw)
    except TypeError as exc:
        raise InvalidJob(f"jobs[{index}]", str(exc)) from None


def get(job_id: Any) -> Job | None:
    """The job with this id, or None (also for a malformed id)."""
    pk = states.parse_id(job_id)
    return None if pk is None else Job.objects.filter(pk=pk).first()


def cancel(job_id: Any) -> Job:
    """Cancel a waiting job, or ask a running one to stop (its worker sees it within a second).

    Raises ``Job.DoesNotExist`` or :class:`jobs.states.TransitionError`.
    """
    pk = states.parse_id(job_id)
    if pk is None:
        raise Job.DoesNotExist(f"no job {job_id!r}")
    job, dequeue = states.cancel(pk)
    if dequeue:
        transaction.on_commit(lambda: _dequeue_cancelled(job))
    return job


def _dequeue_cancelled(job: Job) -> None:
    """Take a cancelled job's id out of Redis, unless a retry made it wait again in the meantime.

    A retry that commits between the cancel and this removal pushes an id Redis already holds (a
    no-op), and the removal would then strand the waiting row until the reconciler's next pass.
    """
    _remove_from_queue(job)
    again = Job.objects.filter(pk=job.pk).waiting().first()
    if again is not None:
        dispatch([again])


def retry(job_id: Any) -> Job:
    """Run a failed or cancelled job again from a fresh retry budget."""
    pk = states.parse_id(job_id)
    if pk is None:
        raise Job.DoesNotExist(f"no job {job_id!r}")
    job = states.retry(pk)
    transaction.on_commit(lambda: dispatch([job]))
    return job


def run_now(job_id: Any) -> Job:
    """Make a scheduled or retrying job run at once."""
    pk = states.parse_id(job_id)
    if pk is None:
        raise Job.DoesNotExist(f"no job {job_id!r}")
    job = states.run_now(pk)

    def move() -> None:
        _remove_from_queue(job)
        dispatch([job])

    transaction.on_commit(move)
    return job


def _remove_from_queue(job: Job) -> None:

    try:
        get_broker().remove(job.queue, [str(job.pk)])
    except BrokerUnavailable:
        # The row is what counts: a worker that claims the id finds it not runnable and skips it.
        logger.warning("could not remove job from Redis", extra={"job_id": str(job.pk)})
