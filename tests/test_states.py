"""The state machine: every legal transition happens, every illegal one is refused, stale writes lose."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import states
from jobs.models import Job, JobAttempt, Outcome, Status
from jobs.states import TRANSITIONS, AttemptResult, TransitionError

pytestmark = pytest.mark.django_db(transaction=True)

ALL = [s.value for s in Status]


def make(status: str = Status.PENDING, **fields: object) -> Job:
    return Job.objects.create(type="test_noop", status=status, **fields)


def result(job: Job, outcome: str, **extra: object) -> AttemptResult:
    now = timezone.now()
    return AttemptResult(job=job, outcome=outcome, started_at=now, finished_at=now, duration=0.01, **extra)  # type: ignore[arg-type]


def test_transition_table_is_complete() -> None:
    assert set(TRANSITIONS) == set(ALL)
    assert TRANSITIONS[Status.COMPLETED] == frozenset()
    assert not states.allowed(Status.COMPLETED, Status.PENDING)
    assert states.allowed(Status.RUNNING, Status.COMPLETED)


@pytest.mark.parametrize("status", [Status.PENDING, Status.SCHEDULED, Status.RETRYING])
def test_waiting_jobs_can_be_cancelled(status: str) -> None:
    job = make(status)
    changed, dequeued = states.cancel(job.pk)
    assert changed.status == Status.CANCELLED and dequeued and changed.completed_at is not None


def test_running_job_cancel_is_a_request() -> None:
    job = make(Status.RUNNING, attempts=1, worker="w")
    changed, dequeued = states.cancel(job.pk)
    assert changed.status == Status.RUNNING and changed.cancel_requested and not dequeued


@pytest.mark.parametrize("status", [Status.COMPLETED, Status.FAILED, Status.CANCELLED])
def test_finished_jobs_cannot_be_cancelled(status: str) -> None:
    job = make(status)
    with pytest.raises(TransitionError, match=f"is {status}"):
        states.cancel(job.pk)
    assert Job.objects.get(pk=job.pk).status == status


@pytest.mark.parametrize("status", [Status.FAILED, Status.CANCELLED])
def test_failed_and_cancelled_jobs_can_be_retried(status: str) -> None:
    job = make(status, attempts=4, error="boom")
    retried = states.retry(job.pk)
    assert (retried.status, retried.attempts, retried.error) == (Status.PENDING, 0, "")


@pytest.mark.parametrize(
    "status", [Status.PENDING, Status.SCHEDULED, Status.RUNNING, Status.RETRYING, Status.COMPLETED]
)
def test_other_jobs_cannot_be_retried(status: str) -> None:
    job = make(status)
    with pytest.raises(TransitionError):
        states.retry(job.pk)


def test_run_now_only_for_scheduled_and_retrying() -> None:
    assert states.run_now(make(Status.SCHEDULED).pk).status == Status.PENDING
    assert states.run_now(make(Status.RETRYING).pk).status == Status.PENDING
    with pytest.raises(TransitionError):
        states.run_now(make(Status.PENDING).pk)


def test_claim_marks_only_waiting_rows_running() -> None:
    waiting = [make(Status.PENDING), make(Status.SCHEDULED), make(Status.RETRYING)]
    cancelled = make(Status.CANCELLED)
    claimed = states.claim([str(j.pk) for j in [*waiting, cancelled]], "worker-1")
    assert {j.pk for j in claimed} == {j.pk for j in waiting}
    for job in claimed:
        assert (job.status, job.attempts, job.worker) == (Status.RUNNING, 1, "worker-1")
        assert isinstance(job.payload, dict)
    assert states.claim([str(waiting[0].pk)], "worker-2") == []


def test_success_completes_with_result_and_attempt_row() -> None:
    [job] = states.claim([str(make().pk)], "w")
    [recorded] = states.record([result(job, Outcome.COMPLETED, result={"n": 1})])
    assert recorded.status == Status.COMPLETED
    row = Job.objects.get(pk=job.pk)
    assert row.result == {"n": 1} and row.completed_at is not None
    attempt = JobAttempt.objects.get(job=job)
    assert (attempt.number, attempt.outcome, attempt.worker) == (1, Outcome.COMPLETED, "w")


def test_failure_retries_until_the_budget_is_spent() -> None:
    job = make(max_retries=1, initial_delay=10, jitter=False)
    [claimed] = states.claim([str(job.pk)], "w")
    [first] = states.record([result(claimed, Outcome.FAILED, error="boom")])
    assert first.status == Status.RETRYING and first.due is not None
    row = Job.objects.get(pk=job.pk)
    assert row.status == Status.RETRYING and row.schedule_at is not None
    assert timedelta(seconds=9) < row.schedule_at - timezone.now() <= timedelta(seconds=10)
    [claimed] = states.claim([str(job.pk)], "w")
    [second] = states.record([result(claimed, Outcome.FAILED, error="boom again")])
    assert second.status == Status.FAILED
    assert Job.objects.get(pk=job.pk).error == "boom again"
    assert JobAttempt.objects.filter(job=job).count() == 2


def test_permanent_failure_skips_retries() -> None:
    [claimed] = states.claim([str(make(max_retries=5).pk)], "w")
    [recorded] = states.record([result(claimed, Outcome.FAILED, permanent=True)])
    assert recorded.status == Status.FAILED


def test_stale_recorder_is_rejected() -> None:
    job = make()
    [first] = states.claim([str(job.pk)], "w1")
    states.record_lost(str(job.pk), "w1", "worker lost")
    states.run_now(job.pk)
    [second] = states.claim([str(job.pk)], "w2")
    assert second.attempts == 2
    [stale] = states.record([result(first, Outcome.COMPLETED, result="old")])
    assert stale.status is None
    [fresh] = states.record([result(second, Outcome.COMPLETED, result="new")])
    assert fresh.status == Status.COMPLETED
    assert Job.objects.get(pk=job.pk).result == "new"


def test_completion_after_cancel_request_ends_cancelled() -> None:
    [claimed] = states.claim([str(make().pk)], "w")
    states.cancel(claimed.pk)
    [recorded] = states.record([result(claimed, Outcome.COMPLETED, result={"ignored": True})])
    assert recorded.status == Status.CANCELLED
    assert Job.objects.get(pk=claimed.pk).result is None


def test_release_does_not_charge_the_attempt() -> None:
    [claimed] = states.claim([str(make().pk)], "w")
    assert states.release([claimed]) == [claimed]
    row = Job.objects.get(pk=claimed.pk)
    assert (row.status, row.attempts, row.worker) == (Status.PENDING, 0, "")


def test_lost_attempt_counts_toward_the_limit() -> None:
    job = make(max_retries=0)
    states.claim([str(job.pk)], "w")
    recorded = states.record_lost(str(job.pk), "w", "worker lost (signal 9)")
    assert recorded is not None and recorded.status == Status.FAILED
    assert JobAttempt.objects.get(job=job).outcome == Outcome.LOST
    assert states.record_lost(str(job.pk), "w", "again") is None


def test_batch_record_of_many_jobs() -> None:
    jobs = [make() for _ in range(50)]
    claimed = states.claim([str(j.pk) for j in jobs], "w")
    recorded = states.record([result(j, Outcome.COMPLETED, result=i) for i, j in enumerate(claimed)])
    assert {r.status for r in recorded} == {Status.COMPLETED}
    assert Job.objects.filter(status=Status.COMPLETED).count() == 50
    assert JobAttempt.objects.count() == 50
