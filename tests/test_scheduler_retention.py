"""Retention: old completed/cancelled and failed jobs are deleted in batches, each group by its own age."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.broker import Broker
from jobs.models import Job, JobAttempt, Outcome, Status
from scheduler import retention
from tests.helpers import override_zipline

pytestmark = pytest.mark.django_db(transaction=True)

DAY = 86400.0


def finished(status: str, days_ago: float, n: int = 1, **extra: object) -> list[Job]:
    when = timezone.now() - timedelta(days=days_ago)
    jobs = Job.objects.bulk_create(
        [Job(type="test_noop", status=status, completed_at=when, updated_at=when, **extra) for _ in range(n)]
    )
    JobAttempt.objects.bulk_create([JobAttempt(job=j, number=1, outcome=Outcome.COMPLETED) for j in jobs])
    return jobs


def test_old_finished_jobs_go_each_after_its_own_age() -> None:
    old_done = finished(Status.COMPLETED, 8, 3)
    old_cancelled = finished(Status.CANCELLED, 8)
    recent_done = finished(Status.COMPLETED, 6)
    old_failed = finished(Status.FAILED, 31, 2)
    young_failed = finished(Status.FAILED, 8)
    waiting = Job.objects.create(
        type="test_noop", status=Status.PENDING, updated_at=timezone.now() - timedelta(days=90)
    )
    report = retention.purge(completed_age=7 * DAY, failed_age=30 * DAY, batch=100)
    assert report.deleted == {"completed": 4, "failed": 2}
    left = set(Job.objects.values_list("pk", flat=True))
    assert left == {recent_done[0].pk, young_failed[0].pk, waiting.pk}
    assert not JobAttempt.objects.filter(job_id__in=[j.pk for j in old_done + old_cancelled + old_failed]).exists()


def test_deletes_in_batches_within_a_time_budget() -> None:
    finished(Status.COMPLETED, 10, 250)
    first = retention.purge(completed_age=7 * DAY, failed_age=30 * DAY, batch=100, budget=0)
    assert first.deleted == {"completed": 100} and first.more
    rest = retention.purge(completed_age=7 * DAY, failed_age=30 * DAY, batch=100)
    assert rest.deleted == {"completed": 150} and not rest.more
    assert not Job.objects.exists()


def test_a_row_without_completed_at_falls_back_to_updated_at() -> None:
    old = timezone.now() - timedelta(days=40)
    job = Job.objects.create(type="test_noop", status=Status.FAILED, updated_at=old)
    assert retention.purge(completed_age=7 * DAY, failed_age=30 * DAY, batch=10).total == 1
    assert not Job.objects.filter(pk=job.pk).exists()


def test_the_scheduler_duty_uses_the_settings_and_runs_once_per_interval(broker: Broker) -> None:
    from scheduler.service import RETENTION_INTERVAL, Scheduler

    finished(Status.COMPLETED, 2, 5)
    finished(Status.FAILED, 2, 5)
    with override_zipline(retention_completed=DAY, retention_failed=3 * DAY):
        first, second = Scheduler(broker, identity="a"), Scheduler(broker, identity="b")
        assert first.retention() == RETENTION_INTERVAL
        assert Job.objects.filter(status=Status.COMPLETED).count() == 0
        assert Job.objects.filter(status=Status.FAILED).count() == 5
        finished(Status.COMPLETED, 2, 5)
        second.retention()  # gated: the other scheduler ran it this interval
        assert Job.objects.filter(status=Status.COMPLETED).count() == 5
