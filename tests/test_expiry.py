"""Expiry: a job not started by its expires_at never runs and ends ``expired`` with the reason, whether a
worker claims it, it sits in a paused queue, or it waits delayed or for a retry; and ``expired`` shows
everywhere a state does."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from jobs import client, expiry, queues, states
from jobs.broker import Broker
from jobs.models import Job, JobAttempt, Status
from jobs.states import EXPIRED_REASON
from scheduler import retention
from scheduler.service import EXPIRE_CHECK, Scheduler
from tests.helpers import run_attempt, wait_for
from tests.procs import running

pytestmark = pytest.mark.django_db(transaction=True)

WORKER = "host:1:abc"


def in_redis(broker: Broker, queue: str, job: Job) -> list[str]:
    """The Redis structures of ``queue`` that hold ``job``'s id."""
    k = broker.keys(queue)
    structures = (("ready", k.ready), ("delayed", k.delayed), ("leases", k.leases))
    return [name for name, key in structures if broker.client.zscore(key, str(job.pk)) is not None]


def assert_expired_unrun(job: Job) -> Job:
    row = Job.objects.get(pk=job.pk)
    assert row.status == Status.EXPIRED and row.error == EXPIRED_REASON and row.completed_at is not None
    assert not JobAttempt.objects.filter(job=row).exists(), "an expired job never ran"
    return row


def test_expires_in_and_expires_at_set_the_row(broker: Broker) -> None:
    before = timezone.now()
    job = client.enqueue("test_noop", {}, expires_in="10m")
    assert job.expires_at is not None
    assert before + timedelta(minutes=10) <= job.expires_at <= timezone.now() + timedelta(minutes=10)
    at = timezone.now() + timedelta(hours=2)
    assert client.enqueue("test_noop", {}, expires_at=at).expires_at == at


def test_a_claim_after_the_expiry_expires_the_row_instead_of_running_it(broker: Broker) -> None:
    job = client.enqueue("test_noop", {}, expires_in="1m")
    later = timezone.now() + timedelta(minutes=2)
    assert states.claim([str(job.pk)], WORKER, now=later) == []
    assert_expired_unrun(job)
    assert Job.objects.get(pk=job.pk).attempts == 0


def test_a_claim_before_the_expiry_runs_the_job(broker: Broker) -> None:
    job = client.enqueue("test_noop", {}, expires_in="1m")
    [claimed] = states.claim([str(job.pk)], WORKER, now=timezone.now() + timedelta(seconds=59))
    assert claimed.status == Status.RUNNING


def test_a_claim_of_several_expires_only_the_expired(broker: Broker) -> None:
    soon = client.enqueue("test_noop", {}, expires_in="1m")
    never = client.enqueue("test_noop", {})
    late = client.enqueue("test_noop", {}, expires_in="1h")
    claimed = states.claim([str(j.pk) for j in (soon, never, late)], WORKER, now=timezone.now() + timedelta(minutes=2))
    assert {j.pk for j in claimed} == {never.pk, late.pk}
    assert_expired_unrun(soon)


def test_the_sweep_expires_a_delayed_job_and_takes_it_out_of_redis(broker: Broker) -> None:
    job = client.enqueue("test_noop", {}, delay="1h", expires_in="10m")
    assert in_redis(broker, "default", job) == ["delayed"]
    assert expiry.sweep(broker, 100, now=timezone.now() + timedelta(minutes=9)).expired == []
    report = expiry.sweep(broker, 100, now=timezone.now() + timedelta(minutes=11))
    assert report.expired == [str(job.pk)] and not report.more
    row = assert_expired_unrun(job)
    assert row.schedule_at is None and in_redis(broker, "default", job) == []


def test_the_sweep_expires_a_job_waiting_for_its_retry(broker: Broker) -> None:
    job = client.enqueue("test_noop", {}, expires_in="30m", retry={"initial_delay": "1h", "jitter": False})
    failed_once = run_attempt(job, "failed", error="boom", permanent=False)
    assert failed_once.status == Status.RETRYING
    expiry.sweep(broker, 100, now=timezone.now() + timedelta(minutes=31))
    row = Job.objects.get(pk=job.pk)
    assert row.status == Status.EXPIRED and row.attempts == 1 and row.error == EXPIRED_REASON


def test_the_sweep_leaves_running_and_unexpiring_jobs_alone(broker: Broker) -> None:
    runs = client.enqueue("test_noop", {}, expires_in="1m")
    states.claim([str(runs.pk)], WORKER)
    plain = client.enqueue("test_noop", {})
    report = expiry.sweep(broker, 100, now=timezone.now() + timedelta(hours=1))
    assert report.expired == []
    assert Job.objects.get(pk=runs.pk).status == Status.RUNNING and Job.objects.get(pk=plain.pk).status == "pending"


def test_the_sweep_goes_in_batches(broker: Broker) -> None:
    for _ in range(5):
        client.enqueue("test_noop", {}, expires_in="1m")
    later = timezone.now() + timedelta(minutes=2)
    first = expiry.sweep(broker, 3, now=later)
    assert len(first.expired) == 3 and first.more
    second = expiry.sweep(broker, 3, now=later)
    assert len(second.expired) == 2 and not second.more


def test_the_scheduler_runs_the_sweep(broker: Broker) -> None:
    job = client.enqueue("test_noop", {}, expires_in="1h")
    Job.objects.filter(pk=job.pk).update(expires_at=timezone.now() - timedelta(seconds=1))  # its hour has passed
    assert Scheduler(broker).expire() == EXPIRE_CHECK
    assert_expired_unrun(job)
    assert in_redis(broker, "default", job) == []


def test_an_expired_job_is_final(broker: Broker) -> None:
    job = client.enqueue("test_noop", {}, expires_in="1m")
    expiry.sweep(broker, 100, now=timezone.now() + timedelta(minutes=2))
    with pytest.raises(states.TransitionError):
        client.retry(job.pk)
    with pytest.raises(states.TransitionError):
        client.cancel(job.pk)


def test_retention_deletes_expired_jobs_with_the_completed_ones(broker: Broker) -> None:
    job = client.enqueue("test_noop", {}, expires_in="1m")
    expiry.sweep(broker, 100, now=timezone.now() + timedelta(minutes=2))
    report = retention.purge(completed_age=60, failed_age=10**6, batch=100, now=timezone.now() + timedelta(hours=1))
    assert report.deleted == {"completed": 1} and not Job.objects.filter(pk=job.pk).exists()


# -- everywhere a state shows -----------------------------------------------------------------------------


def expired_job(broker: Broker, queue: str = "default") -> Job:
    job = client.enqueue("test_noop", {}, queue=queue, expires_in="1m", name="too-late")
    expiry.sweep(broker, 100, now=timezone.now() + timedelta(minutes=2))
    return Job.objects.get(pk=job.pk)


def test_the_api_shows_filters_and_counts_expired_jobs(api: APIClient, broker: Broker) -> None:
    job = expired_job(broker, "exp-q")
    client.enqueue("test_noop", {}, queue="exp-q")
    shown = api.get(f"/api/v1/jobs/{job.pk}").json()
    assert shown["status"] == "expired" and shown["expires_at"] and shown["error"] == EXPIRED_REASON
    listed = api.get("/api/v1/jobs", {"status": "expired"}).json()["results"]
    assert [j["id"] for j in listed] == [str(job.pk)]
    assert api.get("/api/v1/queues/exp-q/stats").json()["counts"]["expired"] == 1
    assert api.get("/api/v1/stats").json()["counts"]["expired"] >= 1
    assert api.delete(f"/api/v1/jobs/{job.pk}").status_code == 204, "an expired job is finished: it may be deleted"


def test_the_admin_filters_expired_jobs(broker: Broker) -> None:
    from django.contrib.auth.models import User

    job = expired_job(broker)
    other = client.enqueue("test_noop", {})
    browser = Client()
    browser.force_login(User.objects.create_superuser("exp-admin"))
    page = browser.get("/admin/jobs/job/", {"status__exact": "expired"}).content.decode()
    assert str(job.pk) in page and str(other.pk) not in page and "zl-status-expired" in page


def test_the_dashboard_search_filters_expired_jobs(broker: Broker) -> None:
    from django.contrib.auth.models import User

    job = expired_job(broker)
    other = client.enqueue("test_noop", {})
    browser = Client()
    browser.force_login(User.objects.create_superuser("exp-dash"))
    page = browser.get("/dashboard/jobs/", {"status": "expired"}).content.decode()
    assert str(job.pk)[:8] in page and str(other.pk)[:8] not in page
    assert '<option value="expired"' in page
    detail = browser.get(f"/dashboard/jobs/{job.pk}/").content.decode()
    assert "Expired before it started" in detail


def test_the_tasks_backend_reads_an_expired_job_as_failed() -> None:
    from jobs.tasks_backend.compat import TaskResultStatus
    from jobs.tasks_backend.results import STATUS

    assert set(STATUS) == set(Status), "every state has a task status"
    assert STATUS[Status.EXPIRED] == TaskResultStatus.FAILED


# -- with a real worker pool -------------------------------------------------------------------------------


def test_a_paused_queue_expires_its_job_which_never_runs_after_resuming(broker: Broker, tmp_path: Path) -> None:
    queues.pause("paused-q")
    job = client.enqueue("test_noop", {}, queue="paused-q", expires_in="1h")
    with running(["runworkers", "--processes", "1", "--queues", "paused-q"], tmp_path):
        expiry.sweep(broker, 100, now=timezone.now() + timedelta(hours=2))
        assert in_redis(broker, "paused-q", job) == []
        queues.resume("paused-q")
        after = client.enqueue("test_noop", {}, queue="paused-q")
        wait_for(lambda: Job.objects.get(pk=after.pk).status == Status.COMPLETED, 20, message="the resumed queue runs")
    row = assert_expired_unrun(job)
    assert row.attempts == 0 and row.started_at is None


def test_a_worker_that_claims_an_expired_job_expires_it_and_drops_its_id(broker: Broker, tmp_path: Path) -> None:
    job = client.enqueue("test_noop", {}, queue="late-q", expires_in="1h")
    Job.objects.filter(pk=job.pk).update(expires_at=timezone.now() - timedelta(seconds=1))  # its hour has passed
    after = client.enqueue("test_noop", {}, queue="late-q")
    with running(["runworkers", "--processes", "1", "--concurrency", "1", "--queues", "late-q"], tmp_path) as pool:
        wait_for(lambda: Job.objects.get(pk=after.pk).status == Status.COMPLETED, 20, message="the next job runs")
        log = pool.log()
    assert_expired_unrun(job)
    assert in_redis(broker, "late-q", job) == []
    assert "skipped ids that are not runnable" in log


def test_a_job_waiting_for_its_retry_expires_and_leaves_redis(broker: Broker, tmp_path: Path) -> None:
    job = client.enqueue(
        "test_fail", {}, queue="retry-q", expires_in="30m", retry={"initial_delay": "1h", "jitter": False}
    )
    with running(["runworkers", "--processes", "1", "--queues", "retry-q"], tmp_path):
        wait_for(lambda: Job.objects.get(pk=job.pk).status == Status.RETRYING, 20, message="the first attempt fails")
        wait_for(lambda: in_redis(broker, "retry-q", job) == ["delayed"], 10, message="the retry waits in Redis")
        expiry.sweep(broker, 100, now=timezone.now() + timedelta(minutes=31))
    row = Job.objects.get(pk=job.pk)
    assert row.status == Status.EXPIRED and row.attempts == 1 and row.error == EXPIRED_REASON
    assert in_redis(broker, "retry-q", job) == []
    assert JobAttempt.objects.filter(job=row).count() == 1, "the one attempt before it expired, and no other"
