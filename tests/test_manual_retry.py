"""A job retried by hand keeps its attempt numbers unique, and its next attempt says it followed the retry."""

from __future__ import annotations

import uuid
from functools import partial
from pathlib import Path
from typing import Any, cast

import pytest

from jobs import client, states
from jobs.broker import Broker
from jobs.models import Job, JobAttempt, Status
from tests.helpers import run_attempt, wait_for
from tests.procs import running

pytestmark = pytest.mark.django_db(transaction=True)


def _failed_after(job: Job, attempts: int) -> bool:
    return JobAttempt.objects.filter(job=job).count() == attempts and Job.objects.get(pk=job.pk).status == "failed"


def test_attempt_numbers_continue_through_manual_retries_on_a_real_worker(
    api: Any, broker: Broker, tmp_path: Path
) -> None:
    ledger = f"{broker.prefix}:ledger-{uuid.uuid4().hex[:8]}"
    policy = {"max_retries": 1, "backoff": "fixed", "initial_delay": "100ms", "jitter": False}
    job = client.enqueue("test_fail", {"key": ledger}, retry=policy)
    with running(["runworkers", "--processes", "1", "--concurrency", "2"], tmp_path) as pool:
        for attempts, retry_by_hand in [(2, None), (4, "api"), (6, "python")]:
            if retry_by_hand == "api":
                answer = api.post(f"/api/v1/jobs/{job.pk}/retry")
                assert answer.status_code == 200, answer.json()
            elif retry_by_hand == "python":
                assert client.retry(job.pk).status == Status.PENDING
            try:
                wait_for(partial(_failed_after, job, attempts), 20, 0.05, f"{attempts} attempts, then failed")
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{pool.log()[-3000:]}") from None
    row = Job.objects.get(pk=job.pk)
    assert (row.attempts, row.earlier_attempts, row.manual_retries) == (2, 4, 2)  # a fresh budget each time
    history = api.get(f"/api/v1/jobs/{job.pk}").json()["attempt_history"]
    assert [(a["number"], a["after_manual_retry"]) for a in history] == [
        (1, False),
        (2, False),
        (3, True),
        (4, False),
        (5, True),
        (6, False),
    ]
    # The running job saw the same numbers (ctx.attempt).
    seen = [entry.decode().split("|")[1] for entry in cast(list[bytes], broker.client.lrange(ledger, 0, -1))]
    assert seen == ["1", "2", "3", "4", "5", "6"]


def test_a_job_cancelled_before_it_ran_and_retried_by_hand_shows_the_retry_on_its_first_attempt(
    broker: Broker,
) -> None:
    job = client.enqueue("test_noop", {})
    states.cancel(job.pk)
    states.retry(job.pk)
    run_attempt(job, "completed")
    [attempt] = JobAttempt.objects.filter(job=job)
    assert (attempt.number, attempt.after_manual_retry) == (1, True)


def test_a_stale_finish_from_before_a_manual_retry_is_still_rejected(broker: Broker) -> None:
    """Fencing keys on the attempt's number as well as its count in the budget and its worker: a
    recorder of a run before the retry matches no row, even on the same worker."""
    job = client.enqueue("test_noop", {}, retry={"max_retries": 0})
    [first_run] = states.claim([str(job.pk)], "host:1:old")
    states.record_lost(str(job.pk), "host:1:old", "lease expired")
    states.retry(job.pk)
    [second_run] = states.claim([str(job.pk)], "host:1:old")  # the same worker: only the number tells them apart
    now = first_run.started_at
    assert now is not None
    stale = states.AttemptResult(first_run, "completed", now, now, 0.1, result="stale")
    assert states.record([stale])[0].status is None
    fresh = states.AttemptResult(second_run, "completed", now, now, 0.1, result="fresh")
    assert states.record([fresh])[0].status == Status.COMPLETED
    numbers = list(JobAttempt.objects.filter(job=job).values_list("number", "outcome", "after_manual_retry"))
    assert numbers == [(1, "lost", False), (2, "completed", True)]


def test_the_job_pages_show_which_attempt_followed_a_manual_retry(admin_client: Any, broker: Broker) -> None:
    job = client.enqueue("test_noop", {}, retry={"max_retries": 0})
    run_attempt(job, "failed")
    states.retry(job.pk)
    run_attempt(job, "completed")
    for url in (f"/dashboard/jobs/{job.pk}/", f"/admin/jobs/job/{job.pk}/change/"):
        page = admin_client.get(url).content.decode()
        assert page.count("a manual retry") == 1, url
