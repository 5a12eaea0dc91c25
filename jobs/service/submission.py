"""Submitting jobs: one (with idempotency) or many (all or none).

Rows are written in the caller's transaction; ids reach Redis when it commits (``on_commit``), so a
job submitted inside a transaction that rolls back never runs. Outside a transaction each call
commits before it returns.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from django.db import DataError, IntegrityError, OperationalError, transaction
from django.utils import timezone

from jobs import batches, dependencies, endings, insert, uniqueness
from jobs.dispatch import dispatch
from jobs.idempotency import PYTHON_SCOPE, check_reuse, fingerprint
from jobs.models import Job
from jobs.service.errors import KeysReused
from jobs.unique_terms import Uniqueness
from jobs.validation import InvalidJob, JobSpec, validate

T = TypeVar("T")


#: How often a submission that PostgreSQL chose as a deadlock's victim is written again.
DEADLOCK_RETRIES = 3


def storing(write: Callable[[], T]) -> T:
    """Run ``write``; a value the database still refuses becomes :class:`InvalidJob`, and nothing is written.

    The shared validation refuses what the database cannot store (NUL characters, lone surrogates,
    dates it cannot read back), so this is the last line, not the rule. A submission that locks its
    parents can meet a recorder ending them in another order; when PostgreSQL breaks that deadlock by
    rolling the submission back, it is written again (only outside the caller's own transaction, which
    the deadlock has aborted: there the error goes to the caller).
    """
    retries = 0 if transaction.get_connection().in_atomic_block else DEADLOCK_RETRIES
    for attempt in range(retries + 1):
        try:
            return _stored(write)
        except OperationalError as exc:
            if attempt == retries or not isinstance(exc.__cause__, psycopg.errors.DeadlockDetected):
                raise
    raise AssertionError("unreachable")  # the loop returns or raises


def _stored(write: Callable[[], T]) -> T:
    try:
        return write()
    except (DataError, psycopg.DataError) as exc:
        raise InvalidJob("body", f"cannot be stored: {str(exc).splitlines()[0]}") from None
    except psycopg.IntegrityError as exc:  # the batch's COPY reports psycopg's own errors
        raise IntegrityError(str(exc)) from None


def submit(
    spec: JobSpec, scope: str = PYTHON_SCOPE, *, submitted_by: Any = None, now: datetime | None = None
) -> tuple[Job, bool]:
    """Submit ``spec``; returns (job, created). ``created`` is False for a repeated idempotency key,
    and for a duplicate of a unique job (then ``job.duplicate`` is True).

    Keys are unique within ``scope`` (see :mod:`jobs.idempotency`); a key used before for a different
    submission raises :class:`jobs.idempotency.IdempotencyConflict` and writes nothing. ``submitted_by``
    (a user) is recorded: they see the payload's secrets unmasked (:mod:`jobs.masking`). ``now`` is
    the submission's time (tests drive it).
    """
    return storing(lambda: _submit(spec, scope, submitted_by, now or timezone.now()))


def _submit(spec: JobSpec, scope: str, submitted_by: Any, now: datetime) -> tuple[Job, bool]:
    valid = validate(spec, now)
    parents = dependencies.job_terms(spec, valid)
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
        joins = key is not None or valid.unique or parents or spec.batch is not None
        with transaction.atomic() if joins else nullcontext():
            holder = None if valid.unique is None else uniqueness.claim(valid.unique, row["id"], now)
            if holder is not None:
                holder.duplicate = True
                return holder, False
            if spec.batch is not None:
                row["batch_id"] = batches.join(spec.batch, 1)
            dependencies.require_parents({row["id"]: parents}, {row["id"]: "depends_on"})
            insert.insert([row], [valid.payload_json])
            if parents:
                return _with_parents([row], {row["id"]: parents})[0], True
    except IntegrityError:
        existing = Job.objects.filter(idempotency_scope=scope, idempotency_key=key).first() if key else None
        if existing is not None:
            return check_reuse(spec, existing), False
        raise
    [job] = insert.instances([row])
    transaction.on_commit(lambda: dispatch([job]))
    return job, True


def submit_many(
    specs: Sequence[JobSpec | dict[str, Any]],
    scope: str = PYTHON_SCOPE,
    *,
    submitted_by: Any = None,
    now: datetime | None = None,
) -> list[Job]:
    """Submit many jobs: all rows in one INSERT, all ids in one Redis pipeline; all or none.
    ``submitted_by`` is recorded as in :func:`submit`.

    Raises :class:`InvalidJob` with the index of the first bad spec in its field (``jobs[3].type``).
    Idempotency keys are unique within ``scope``; a key used before (or twice in the batch) raises
    :class:`KeysReused` (an ``IntegrityError``) naming the jobs, and nothing is written.
    A unique job whose key is held (by a stored job, or by an earlier job of the batch) is not written:
    its place in the answer holds the holder, with ``duplicate`` True.
    """
    now = now or timezone.now()
    checked, rows, payloads, wanted, parents = _batch_rows(specs, scope, submitted_by, now)
    if not rows:
        return []
    try:
        return storing(lambda: _insert_many(checked, rows, payloads, wanted, parents, now))
    except IntegrityError:
        raise KeysReused(reused_keys(checked, scope)) from None


Parents = dict[uuid.UUID, list[uuid.UUID]]  # a new job's id -> its parents' ids


def _batch_rows(
    specs: Sequence[JobSpec | dict[str, Any]], scope: str, submitted_by: Any, now: datetime
) -> tuple[list[JobSpec], list[dict[str, Any]], list[Any], list[tuple[int, Uniqueness, uuid.UUID]], Parents]:
    """A batch's checked specs, rows and payloads, the unique terms of its unique jobs (by index),
    and the parents of the jobs that have some."""
    checked: list[JobSpec] = []
    rows, payloads, wanted = [], [], []
    parents: Parents = {}
    for index, raw in enumerate(specs):
        spec = raw if isinstance(raw, JobSpec) else _spec_from_dict(index, raw)
        try:
            valid = validate(spec, now)
            ids = dependencies.job_terms(spec, valid)
        except InvalidJob as exc:
            raise type(exc)(f"jobs[{index}].{exc.field}", exc.message) from None
        row = insert.new_row(valid, now)
        row["submitted_by_id"] = None if submitted_by is None else submitted_by.pk
        if spec.idempotency_key is not None:
            row.update(idempotency_scope=scope, request_fingerprint=fingerprint(spec))
        if valid.unique is not None:
            wanted.append((index, valid.unique, row["id"]))
        if ids:
            parents[row["id"]] = ids
        checked.append(spec)
        rows.append(row)
        payloads.append(valid.payload_json)
    return checked, rows, payloads, wanted, parents


def _insert_many(
    specs: list[JobSpec],
    rows: list[dict[str, Any]],
    payloads: list[Any],
    wanted: list[tuple[int, Uniqueness, uuid.UUID]],
    parents: Parents,
    now: datetime,
) -> list[Job]:
    with transaction.atomic():
        duplicates = uniqueness.claim_many(wanted, now) if wanted else {}
        new = [i for i in range(len(rows)) if i not in duplicates]
        _join_batches(specs, rows, new)
        fields = {rows[i]["id"]: f"jobs[{i}].depends_on" for i in new if rows[i]["id"] in parents}
        dependencies.require_parents({pk: parents[pk] for pk in fields}, fields)
        insert.insert([rows[i] for i in new], [payloads[i] for i in new])
        created = dict(zip(new, insert.instances([rows[i] for i in new]), strict=True))
        fresh = [job for job in created.values() if job.pk not in parents]
        if fresh:
            transaction.on_commit(lambda: dispatch(fresh))
        blocked = [rows[i] for i in new if rows[i]["id"] in parents]
        if blocked:
            created.update(
                zip((i for i in new if rows[i]["id"] in parents), _with_parents(blocked, parents), strict=True)
            )
    return [created[i] if i in created else _duplicate(duplicates[i], created) for i in range(len(rows))]


def _join_batches(specs: list[JobSpec], rows: list[dict[str, Any]], new: list[int]) -> None:
    """The new jobs that name a batch join it (one write a batch); the first job naming a closed or
    unknown one is named in the error."""
    by_batch: dict[Any, list[int]] = {}
    for i in new:
        if specs[i].batch is not None:
            by_batch.setdefault(specs[i].batch, []).append(i)
    for batch, indexes in by_batch.items():
        pk = batches.join(batch, len(indexes), f"jobs[{indexes[0]}].batch")
        for i in indexes:
            rows[i]["batch_id"] = pk


def _with_parents(rows: Sequence[dict[str, Any]], parents: Parents) -> list[Job]:
    """Blocked rows just inserted: their edges written, those whose parents have all ended settled
    at once (:mod:`jobs.endings`, which sends the released ones to Redis on commit)."""
    dependencies.insert_edges([(row["id"], p) for row in rows for p in parents[row["id"]]])
    endings.release_ready([row["id"] for row in rows])
    jobs = insert.instances(rows)
    now = {pk: v for pk, *v in Job.objects.filter(pk__in=[j.pk for j in jobs]).values_list(*_SETTLED)}
    for job in jobs:
        job.__dict__.update(zip(_SETTLED[1:], now[job.pk], strict=True))
    return jobs


_SETTLED = ("pk", "status", "error", "completed_at", "updated_at")


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


def reused_keys(specs: Sequence[JobSpec], scope: str) -> dict[str, list[str]]:
    """Which jobs of a refused batch reuse an idempotency key: twice in the batch, or already stored."""
    details: dict[str, list[str]] = {}
    first: dict[str, int] = {}
    for index, spec in enumerate(specs):
        key = spec.idempotency_key
        if key is None:
            continue
        if key in first:
            details[f"jobs[{index}].idempotency_key"] = [f"{key!r} is jobs[{first[key]}]'s too"]
        else:
            first[key] = index
    stored = Job.objects.filter(idempotency_scope=scope, idempotency_key__in=list(first))
    for key, job_id in stored.values_list("idempotency_key", "id"):
        details[f"jobs[{first[str(key)]}].idempotency_key"] = [f"{key!r} is already job {job_id}'s"]
    return details
