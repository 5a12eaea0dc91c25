"""Retention: finished jobs are deleted once old enough, in batches so no statement runs long.

Completed, cancelled and expired jobs go after ``retention_completed`` (7 days by default), failed ones after
``retention_failed`` (30 days), counted from ``completed_at`` (``updated_at`` for a row that has none).
Each batch selects at most ``batch`` ids and deletes them with the same conditions again, so a job
retried meanwhile (failed -> pending) is never deleted. Attempts go with their job (ON DELETE CASCADE in
the ORM). Several schedulers may run this at once; the second simply finds nothing.

A finished job that a live workflow still needs is kept, however old: a parent of a job that has
not ended (its result is read by ``ctx.parent_results``, and a missing parent counts as failed), and
every job of a workflow that has a job not ended, and every job of a batch that has not finished (its
counters are counted from its jobs' rows) (docs/workflows.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone

from jobs.models import Batch, Job, JobDependency, JobQuerySet, Status

logger = logging.getLogger("zipline.scheduler")


@dataclass
class RetentionReport:
    deleted: dict[str, int] = field(default_factory=dict)  # "completed" / "failed" -> jobs deleted
    more: bool = False

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


def _expired(statuses: Sequence[str], cutoff: datetime) -> JobQuerySet:
    old = Job.objects.in_state(*statuses).filter(
        Q(completed_at__lt=cutoff) | Q(completed_at__isnull=True, updated_at__lt=cutoff)
    )
    kept = old.exclude(pk__in=_needed_parents()).exclude(workflow__in=_live_workflows())
    return kept.exclude(batch__in=Batch.objects.filter(finished_at__isnull=True).values("pk"))


def _needed_parents() -> Any:
    """The parents of jobs that have not ended (a subquery)."""
    return JobDependency.objects.filter(child__in=Job.objects.unended().values("pk")).values("parent_id")


def _live_workflows() -> Any:
    """The workflows with a job that has not ended (a subquery, over the partial index job_workflow)."""
    return Job.objects.filter(workflow__isnull=False).unended().values("workflow")


def purge(
    *,
    completed_age: float,
    failed_age: float,
    batch: int,
    now: datetime | None = None,
    budget: float = 2.0,
) -> RetentionReport:
    """Delete old finished jobs, ``batch`` per statement, for at most ``budget`` seconds."""
    now = now or timezone.now()
    deadline = time.monotonic() + budget
    report = RetentionReport()
    groups = (
        ("completed", (Status.COMPLETED, Status.CANCELLED, Status.EXPIRED), now - timedelta(seconds=completed_age)),
        ("failed", (Status.FAILED,), now - timedelta(seconds=failed_age)),
    )
    for label, statuses, cutoff in groups:
        expired = _expired(statuses, cutoff)
        while True:
            ids = list(expired.order_by().values_list("pk", flat=True)[:batch])
            if not ids:
                break
            _, per_model = expired.filter(pk__in=ids).delete()
            count = per_model.get(Job._meta.label, 0)
            report.deleted[label] = report.deleted.get(label, 0) + count
            logger.info("deleted old jobs", extra={"group": label, "count": count, "older_than": cutoff.isoformat()})
            if len(ids) < batch:
                break
            if time.monotonic() > deadline:
                report.more = True
                return report
    return report
