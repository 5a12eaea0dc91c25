"""Submitting jobs: one (with idempotency) or many (all or none).

Rows are written in the caller's transaction; ids reach Redis when it commits (``on_commit``), so a
job submitted inside a transaction that rolls back never runs. Outside a transaction each call
commits before it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any, TypeVar

import psycopg
from django.db import DataError, IntegrityError, transaction
from django.utils import timezone

from jobs import insert
from jobs.dispatch import dispatch
from jobs.idempotency import PYTHON_SCOPE, check_reuse, fingerprint
from jobs.models import Job
from jobs.service.errors import KeysReused
from jobs.validation import InvalidJob, JobSpec, validate

T = TypeVar("T")


def storing(write: Callable[[], T]) -> T:
    """Run ``write``; a value the database still refuses becomes :class:`InvalidJob`, and nothing is written.

    The shared validation refuses what the database cannot store (NUL characters, lone surrogates,
    dates it cannot read back), so this is the last line, not the rule.
    """
    try:
        return write()
    except (DataError, psycopg.DataError) as exc:
        raise InvalidJob("body", f"cannot be stored: {str(exc).splitlines()[0]}") from None
    except psycopg.IntegrityError as exc:  # the batch's COPY reports psycopg's own errors
        raise IntegrityError(str(exc)) from None


def submit(spec: JobSpec, scope: str = PYTHON_SCOPE, *, submitted_by: Any = None) -> tuple[Job, bool]:
    """Submit ``spec``; returns (job, created). ``created`` is False for a repeated idempotency key.

    Keys are unique within ``scope`` (see :mod:`jobs.idempotency`); a key used before for a different
    submission raises :class:`jobs.idempotency.IdempotencyConflict` and writes nothing. ``submitted_by``
    (a user) is recorded: they see the payload's secrets unmasked (:mod:`jobs.masking`).
    """
    return storing(lambda: _submit(spec, scope, submitted_by))


def _submit(spec: JobSpec, scope: str, submitted_by: Any) -> tuple[Job, bool]:
    valid = validate(spec)
    key = valid.fields.get("idempotency_key")
    if key is not None:
        existing = Job.objects.filter(idempotency_scope=scope, idempotency_key=key).first()
        if existing is not None:
            return check_reuse(spec, existing), False
    row = insert.new_row(valid, timezone.now())
    row["submitted_by_id"] = None if submitted_by is None else submitted_by.pk
    if key is not None:
        row.update(idempotency_scope=scope, request_fingerprint=fingerprint(spec))
    try:
        # Outside a transaction this is one autocommitted INSERT: one round trip to the database.
        with transaction.atomic() if key is not None else nullcontext():
            insert.insert([row], [valid.payload_json])
    except IntegrityError:
        existing = Job.objects.filter(idempotency_scope=scope, idempotency_key=key).first() if key else None
        if existing is not None:
            return check_reuse(spec, existing), False
        raise
    [job] = insert.instances([row])
    transaction.on_commit(lambda: dispatch([job]))
    return job, True


def submit_many(
    specs: Sequence[JobSpec | dict[str, Any]], scope: str = PYTHON_SCOPE, *, submitted_by: Any = None
) -> list[Job]:
    """Submit many jobs: all rows in one INSERT, all ids in one Redis pipeline; all or none.
    ``submitted_by`` is recorded as in :func:`submit`.

    Raises :class:`InvalidJob` with the index of the first bad spec in its field (``jobs[3].type``).
    Idempotency keys are unique within ``scope``; a key used before (or twice in the batch) raises
    :class:`KeysReused` (an ``IntegrityError``) naming the jobs, and nothing is written.
    """
    now = timezone.now()
    checked: list[JobSpec] = []
    rows, payloads = [], []
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
        checked.append(spec)
        rows.append(row)
        payloads.append(valid.payload_json)
    if not rows:
        return []
    try:
        return storing(lambda: _insert_many(rows, payloads))
    except IntegrityError:
        raise KeysReused(reused_keys(checked, scope)) from None


def _insert_many(rows: list[dict[str, Any]], payloads: list[Any]) -> list[Job]:
    with transaction.atomic():
        insert.insert(rows, payloads)
        jobs = insert.instances(rows)
        transaction.on_commit(lambda: dispatch(jobs))
    return jobs


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
