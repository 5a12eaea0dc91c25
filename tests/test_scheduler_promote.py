"""Promotion: delayed and retrying jobs become runnable within a second of their due time, whatever
the poll interval, a bounded batch per step, exactly once with several schedulers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from jobs import client, states
from jobs.broker import Broker, due_score
from jobs.models import Job, JobAttempt, Outcome, Status
from jobs.validation import JobSpec
from scheduler import promote
from tests.helpers import DrivenClock, override_zipline, wait_for
from tests.procs import database_url, running
from tests.test_scheduler_support import Ledger, SchedulerThread, work_once

pytestmark = pytest.mark.django_db(transaction=True)


def delayed(n: int, delay: float, queue: str = "default", **extra: object) -> list[Job]:
    return client.enqueue_many([JobSpec("test_noop", {"i": i}, queue=queue, delay=delay, **extra) for i in range(n)])  # type: ignore[arg-type]


def pending(job: Job) -> Callable[[], bool]:
    return lambda: Job.objects.get(pk=job.pk).status == Status.PENDING


def test_due_jobs_move_to_ready_and_rows_become_pending(broker: Broker, clock: DrivenClock) -> None:
    soon = delayed(3, 0.2)
    later = delayed(2, 60)
    assert {j.status for j in soon + later} == {Status.SCHEDULED}
    assert promote.promote(broker, batch=100).promoted == []
    clock.advance(5_000)  # the test may take up to 4.8 s before the jobs are due by the driven clock
    report = promote.promote(broker, batch=100)
    assert sorted(report.promoted) == sorted(str(j.pk) for j in soon)
    assert report.next_due == (min(due_score(j.schedule_at) for j in later if j.schedule_at) - clock.ms) / 1000
    assert broker.ids("default")["ready"] == {str(j.pk) for j in soon}
    assert set(Job.objects.filter(pk__in=[j.pk for j in soon]).values_list("status", flat=True)) == {Status.PENDING}
    assert set(Job.objects.filter(pk__in=[j.pk for j in later]).values_list("status", flat=True)) == {Status.SCHEDULED}


def test_a_step_moves_at_most_the_batch_size(broker: Broker, clock: DrivenClock) -> None:
    delayed(250, 1.0)
    assert broker.depths("default")["delayed"] == 250
    clock.advance(5_000)
    first = promote.promote(broker, batch=100, budget=0)
    assert len(first.promoted) == 100 and first.more
    rest = promote.promote(broker, batch=100)
    assert len(rest.promoted) == 150 and not rest.more
    assert Job.objects.filter(status=Status.PENDING).count() == 250


def test_two_promoters_move_each_job_exactly_once(broker: Broker, clock: DrivenClock) -> None:
    jobs = delayed(2000, 0.5)
    clock.advance(5_000)  # every job is due by the driven clock: the promoters race from their first step
    barrier = threading.Barrier(2)
    moved: list[list[str]] = [[], []]

    def run(index: int) -> None:
        try:
            barrier.wait()
            # Bounded generously: on a loaded machine 40 steps of 50 can take seconds; the end is an event
            # (nothing left scheduled), so a quick machine never waits for the bound.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and Job.objects.filter(status=Status.SCHEDULED).exists():
                moved[index] += promote.promote(broker, batch=50, budget=0.05).promoted
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not any(t.is_alive() for t in threads), "the promoters did not finish within 90 s"
    left = Job.objects.filter(status=Status.SCHEDULED).count()
    assert left == 0, f"{left} jobs still scheduled after 60 s of promoting"
    assert not set(moved[0]) & set(moved[1])
    assert sorted(moved[0] + moved[1]) == sorted(str(j.pk) for j in jobs)
    assert moved[0] and moved[1]  # both took part
    assert Job.objects.filter(status=Status.PENDING).count() == 2000


def test_delayed_job_is_runnable_within_a_second_with_a_30s_poll(broker: Broker) -> None:
    with override_zipline(scheduler_poll_interval=30.0):
        scheduler = SchedulerThread(identity="promoter")
        scheduler.start()
        try:
            time.sleep(0.5)  # the scheduler is asleep, with nothing delayed, when the jobs arrive
            jobs = [client.enqueue("test_noop", {}, delay=d) for d in (0.8, 1.6, 2.5)]
            for job in jobs:
                wait_for(pending(job), 10, 0.01)
                row = Job.objects.get(pk=job.pk)
                assert row.schedule_at is not None
                lateness = (row.updated_at - row.schedule_at).total_seconds()
                assert 0 <= lateness < 1.0, lateness
        finally:
            scheduler.stop()
    assert scheduler.error is None


def test_runscheduler_process_promotes_on_time_with_a_30s_poll(broker: Broker, tmp_path: Path) -> None:
    with running(["runscheduler"], tmp_path, "scheduler", JQS_SCHEDULER_POLL_INTERVAL="30s") as proc:
        wait_for(lambda: broker.epoch_present(), 20, message="scheduler up (epoch marked)")
        jobs = [client.enqueue("test_noop", {}, delay=d) for d in (1.0, 2.0, 3.5)]
        for job in jobs:
            wait_for(pending(job), 10, 0.01, message=proc.log()[-2000:])
            row = Job.objects.get(pk=job.pk)
            assert row.schedule_at is not None
            assert 0 <= (row.updated_at - row.schedule_at).total_seconds() < 1.0
        assert str(jobs[0].pk) in broker.ids("default")["ready"]


def test_retry_backoff_is_honoured_end_to_end(broker: Broker) -> None:
    """A failed attempt waits its backoff, then the scheduler (no worker polling) makes it runnable."""
    retry = {"max_retries": 2, "backoff": "fixed", "initial_delay": "1500ms", "jitter": False}
    job = client.enqueue("test_noop", {}, retry=retry)
    ledger = Ledger()
    assert work_once(broker, "default", "w1", ledger, outcome=lambda j: Outcome.FAILED) == 1
    failed_at = Job.objects.get(pk=job.pk)
    assert failed_at.status == Status.RETRYING and failed_at.schedule_at is not None
    with override_zipline(scheduler_poll_interval=30.0):
        scheduler = SchedulerThread(identity="retrier")
        scheduler.start()
        try:
            wait_for(lambda: Job.objects.get(pk=job.pk).status == Status.PENDING, 10, 0.01)
            promoted = Job.objects.get(pk=job.pk)
        finally:
            scheduler.stop()
    due = failed_at.schedule_at
    assert timedelta(0) <= promoted.updated_at - due < timedelta(seconds=1)
    assert work_once(broker, "default", "w2", ledger) == 1
    attempts = list(JobAttempt.objects.filter(job=job).order_by("number"))
    assert [a.outcome for a in attempts] == [Outcome.FAILED, Outcome.COMPLETED]
    gap = (attempts[1].started_at - attempts[0].finished_at).total_seconds()  # type: ignore[operator]
    assert 1.5 <= gap < 2.5
    assert ledger.runs[str(job.pk)] == 2
    assert states.record([]) == []


def test_marking_promoted_rows_skips_a_row_another_transaction_holds(broker: Broker) -> None:
    """Waiting for it could deadlock with a worker's multi-row claim; the reconciler marks it later."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's")
    held, free = delayed(2, 60)
    with psycopg.connect(database_url().replace("postgres://", "postgresql://"), autocommit=False) as other:
        other.execute("SET lock_timeout = '10s'")
        other.execute("SELECT id FROM jobs_job WHERE id = %s FOR UPDATE", [held.pk])
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")  # without SKIP LOCKED the mark would wait, then fail
        try:
            assert states.mark_promoted([held.pk, free.pk]) == 1
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = 0")
        other.rollback()
    assert Job.objects.get(pk=held.pk).status == Status.SCHEDULED
    assert Job.objects.get(pk=free.pk).status == Status.PENDING
