"""Batches (docs/workflows.md#batches): create one (with its callbacks, and jobs if given), close it,
cancel it, read it with exact counters. The accounting is :mod:`jobs.batches`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from jobs import batches
from jobs.ids import parse_job_id
from jobs.models import Batch
from jobs.service.errors import BatchNotFound
from jobs.service.submission import submit_many
from jobs.validation import InvalidJob, JobSpec


@dataclass(frozen=True)
class BatchView:
    """A batch as read: its row, its status and its jobs counted by state."""

    batch: Batch
    status: str  # open, running (closed, jobs not all ended), succeeded, failed
    counts: dict[str, int]


def create_batch(
    name: str = "",
    *,
    jobs: Sequence[JobSpec | dict[str, Any]] = (),
    open: bool = False,  # noqa: A002 - the API's word
    submitted_by: Any = None,
    **callbacks: Any,
) -> Batch:
    """A batch with its callbacks (``on_success``, ``on_failure``, ``on_complete``: a job's fields
    each) and ``jobs`` joined at once, all or none; closed unless ``open`` (then more jobs may join
    with ``batch``, until :func:`close_batch`)."""
    if not isinstance(name, str) or len(name) > 200:
        raise InvalidJob("name", "must be a string of at most 200 characters")
    unknown = sorted(set(callbacks) - set(batches.CALLBACKS))
    if unknown:
        raise InvalidJob(unknown[0], "unknown field")
    checked = {key: batches.check_callback(key, callbacks.get(key)) for key in batches.CALLBACKS}
    with transaction.atomic():
        batch = Batch.objects.create(name=name, created_at=timezone.now(), submitted_by=submitted_by, **checked)
        if jobs:
            specs = [_in_batch(spec, batch) for spec in jobs]
            submit_many(specs, submitted_by=submitted_by)
        if not open:
            close_batch(batch.pk)
    return Batch.objects.get(pk=batch.pk)


def _in_batch(spec: JobSpec | dict[str, Any], batch: Batch) -> JobSpec | dict[str, Any]:
    if isinstance(spec, JobSpec):
        spec.batch = str(batch.pk)
        return spec
    return {**spec, "batch": str(batch.pk)} if isinstance(spec, dict) else spec


def _existing(batch_id: object) -> Batch:
    pk = parse_job_id(batch_id)
    batch = None if pk is None else Batch.objects.filter(pk=pk).first()
    if batch is None:
        raise BatchNotFound(batch_id)
    return batch


def close_batch(batch_id: object) -> Batch:
    """No job may join any more; if every job has ended, the callbacks are enqueued now."""
    batch = _existing(batch_id)
    with transaction.atomic():
        Batch.objects.filter(pk=batch.pk).update(closed=True)
        batches.finish_if_done(batch.pk)
    return Batch.objects.get(pk=batch.pk)


def cancel_batch(batch_id: object) -> Batch:
    """Close the batch and cancel every job of it that has not ended (running ones are asked to stop)."""
    batch = _existing(batch_id)
    with transaction.atomic():
        batches.cancel(batch.pk)
    return Batch.objects.get(pk=batch.pk)


def get_batch(batch_id: object) -> BatchView:
    """A batch with its status and exact counters; :class:`BatchNotFound`."""
    batch = _existing(batch_id)
    if batch.finished_at is not None:
        status = "succeeded" if batch.outcome == "success" else "failed"
    else:
        status = "running" if batch.closed else "open"
    return BatchView(batch, status, batches.counters(batch))
