"""Batches (docs/workflows.md#batches): jobs join at submit while the batch is open; once it is closed
and every job has ended, its callbacks are enqueued exactly once, in the transaction of the last
ending, however many recorders finish the last jobs at the same instant; counters are exact."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from jobs import client, service, states
from jobs.broker import Broker
from jobs.lifecycle import Status
from jobs.models import Batch, Job
from jobs.validation import InvalidJob
from tests.helpers import run_attempt

pytestmark = pytest.mark.django_db(transaction=True)

CALLBACKS: dict[str, Any] = {
    "on_success": {"type": "test_noop", "payload": {"cb": "success"}},
    "on_failure": {"type": "test_noop", "payload": {"cb": "failure"}},
    "on_complete": {"type": "test_noop", "payload": {"cb": "complete"}},
}


def callbacks_enqueued() -> list[str]:
    return sorted(
        p["cb"] for p in Job.objects.filter(batch=None, payload__has_key="cb").values_list("payload", flat=True)
    )


def members(batch: Batch) -> list[Job]:
    return list(Job.objects.filter(batch=batch).order_by("created_at", "pk"))


def test_every_job_completed_enqueues_on_success_and_on_complete_once(broker: Broker) -> None:
    batch = client.create_batch("three", jobs=[{"type": "test_noop"}] * 3, **CALLBACKS)
    jobs = members(batch)
    assert service.get_batch(batch.pk).status == "running"
    for job in jobs[:2]:
        run_attempt(job, "completed")
    assert callbacks_enqueued() == [] and service.get_batch(batch.pk).counts["completed"] == 2
    run_attempt(jobs[2], "completed")
    view = service.get_batch(batch.pk)
    assert callbacks_enqueued() == ["complete", "success"]
    assert view.status == "succeeded" and view.counts["total"] == 3 and view.counts["completed"] == 3
    assert set(view.batch.callbacks) == {"on_success", "on_complete"}


def test_a_failed_job_enqueues_on_failure_and_on_complete(broker: Broker) -> None:
    batch = client.create_batch(jobs=[{"type": "test_noop"}, {"type": "test_noop"}], **CALLBACKS)
    first, second = members(batch)
    run_attempt(first, "failed", error="boom")
    run_attempt(second, "completed")
    assert callbacks_enqueued() == ["complete", "failure"]
    assert service.get_batch(batch.pk).counts == {**service.get_batch(batch.pk).counts, "failed": 1, "completed": 1}


def test_an_open_batch_takes_jobs_until_closed(broker: Broker) -> None:
    batch = client.create_batch("open", open=True, **CALLBACKS)
    one = client.enqueue("test_noop", {}, batch=str(batch.pk))
    [two] = service.submit_many([{"type": "test_noop", "batch": str(batch.pk)}])
    run_attempt(one, "completed")
    run_attempt(two, "completed")
    assert callbacks_enqueued() == [], "open: more jobs may come"
    client.close_batch(batch.pk)
    assert callbacks_enqueued() == ["complete", "success"]
    with pytest.raises(InvalidJob) as caught:
        client.enqueue("test_noop", {}, batch=str(batch.pk))
    assert caught.value.field == "batch" and "closed" in caught.value.message
    with pytest.raises(InvalidJob) as caught:
        service.submit_many([{"type": "test_noop"}, {"type": "test_noop", "batch": "nope"}])
    assert caught.value.field == "jobs[1].batch"


def test_a_manual_retry_counts_again_until_the_batch_finishes(broker: Broker) -> None:
    batch = client.create_batch(jobs=[{"type": "test_noop"}, {"type": "test_noop"}], open=True, **CALLBACKS)
    first, second = members(batch)
    run_attempt(first, "failed", error="x")
    client.retry(first.pk)
    run_attempt(second, "completed")
    client.close_batch(batch.pk)
    assert callbacks_enqueued() == [], "the retried job has not ended"
    run_attempt(Job.objects.get(pk=first.pk), "completed")
    assert callbacks_enqueued() == ["complete", "success"]


def test_cancelling_a_batch_cancels_what_has_not_ended(broker: Broker) -> None:
    batch = client.create_batch(jobs=[{"type": "test_noop"}] * 3, **CALLBACKS)
    done, running, waiting = members(batch)
    run_attempt(done, "completed")
    [claimed] = states.claim([str(running.pk)], "w:1:x")
    client.cancel_batch(batch.pk)
    assert Job.objects.get(pk=waiting.pk).status == Status.CANCELLED
    assert Job.objects.get(pk=running.pk).cancel_requested
    assert callbacks_enqueued() == [], "the running job has not stopped yet"
    now = timezone.now()
    states.record([states.AttemptResult(claimed, "completed", now, now, 0.0)])  # it stops: cancelled
    assert callbacks_enqueued() == ["complete", "failure"]
    assert service.get_batch(batch.pk).counts["cancelled"] == 2


def test_the_last_jobs_finishing_at_once_enqueue_each_callback_once(broker: Broker) -> None:
    for _ in range(5):
        Job.objects.filter(batch=None, payload__has_key="cb").delete()
        batch = client.create_batch(jobs=[{"type": "test_noop"}] * 2, **CALLBACKS)
        claimed = states.claim([str(j.pk) for j in members(batch)], "w:1:x")
        barrier = threading.Barrier(2, timeout=10)
        errors: list[BaseException] = []

        def finish(job: Job, barrier: threading.Barrier = barrier, errors: list[BaseException] = errors) -> None:
            try:
                now = timezone.now()
                with transaction.atomic():
                    barrier.wait()
                    states.record([states.AttemptResult(job, "completed", now, now, 0.0)])
            except BaseException as exc:  # noqa: BLE001 - asserted below
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=finish, args=(job,)) for job in claimed]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert not errors, errors
        assert callbacks_enqueued() == ["complete", "success"]


def test_the_api_creates_reads_closes_and_cancels_batches(api: Any, broker: Broker) -> None:
    made = api.post("/api/v1/batches", {"name": "b", "open": True, **CALLBACKS}, format="json")
    assert made.status_code == 201, made.content
    body = made.json()
    assert body["status"] == "open" and body["counts"]["total"] == 0
    job = api.post("/api/v1/jobs", {"type": "test_noop", "batch": body["id"]}, format="json")
    assert job.status_code == 201, job.content
    read = api.get(f"/api/v1/batches/{body['id']}").json()
    assert read["counts"]["total"] == 1 and read["counts"]["pending"] == 1
    closed = api.post(f"/api/v1/batches/{body['id']}/close")
    assert closed.status_code == 200 and closed.json()["status"] == "running"
    cancelled = api.post(f"/api/v1/batches/{body['id']}/cancel").json()
    assert cancelled["status"] == "failed" and cancelled["callbacks"].keys() == {"on_failure", "on_complete"}
    bad = api.post("/api/v1/batches", {"on_success": {"type": "nope"}}, format="json")
    assert bad.status_code == 400 and "on_success.type" in bad.json()["error"]["details"]
    assert api.get("/api/v1/batches/00000000-0000-4000-8000-000000000000").status_code == 404


def test_the_dashboard_shows_progress_and_the_admin_lists_and_cancels(broker: Broker) -> None:
    from django.contrib.auth.models import User
    from django.test import Client

    browser = Client()
    browser.force_login(User.objects.create_superuser("batch-admin"))
    batch = client.create_batch("progress", jobs=[{"type": "test_noop"}] * 4, **CALLBACKS)
    first = members(batch)[0]
    run_attempt(first, "completed")
    page = browser.get(f"/dashboard/batches/{batch.pk}/").content.decode()
    assert 'max="4" value="1"' in page and "1 of 4 jobs ended" in page
    assert f"/dashboard/batches/{batch.pk}/" in browser.get(f"/dashboard/jobs/{first.pk}/").content.decode()
    job_page = browser.get(f"/admin/jobs/job/{first.pk}/change/").content.decode()
    assert f"/admin/jobs/batch/{batch.pk}/change/" in job_page, job_page[job_page.find("Dependencies") :][:1500]
    listing = browser.get("/admin/jobs/batch/").content.decode()
    assert "1 / 4" in listing
    answer = browser.post("/admin/jobs/batch/", {"action": "cancel_batches", "_selected_action": [str(batch.pk)]})
    assert answer.status_code == 302
    assert service.get_batch(batch.pk).counts["cancelled"] == 3 and callbacks_enqueued() == ["complete", "failure"]
    assert browser.get("/dashboard/batches/00000000-0000-4000-8000-000000000000/").status_code == 404


def test_two_submitters_joining_while_jobs_end_keep_the_count_exact(broker: Broker) -> None:
    """Two threads add jobs to one open batch (one at a time, and in batches) while a third ends its
    jobs as they come: the counters match what was submitted, and the callbacks fire once at the end."""
    batch = client.create_batch("busy", open=True, **CALLBACKS)
    submitted: list[list[Any]] = [[], []]
    stop = threading.Event()

    def one_by_one() -> None:
        submitted[0].extend(client.enqueue("test_noop", {}, batch=str(batch.pk)).pk for _ in range(40))
        connection.close()

    def in_batches() -> None:
        for _ in range(4):
            submitted[1].extend(j.pk for j in service.submit_many([{"type": "test_noop", "batch": str(batch.pk)}] * 10))
        connection.close()

    def finisher() -> None:
        while not stop.is_set():
            for job in Job.objects.filter(batch=batch).in_state(Status.PENDING)[:5]:
                run_attempt(job, "completed")
        connection.close()

    threads = [threading.Thread(target=t) for t in (one_by_one, in_batches, finisher)]
    for t in threads:
        t.start()
    for t in threads[:2]:
        t.join(60)
    stop.set()
    threads[2].join(60)
    assert callbacks_enqueued() == [], "still open"
    client.close_batch(batch.pk)
    for job in Job.objects.filter(batch=batch).in_state(Status.PENDING):
        run_attempt(job, "completed")
    view = service.get_batch(batch.pk)
    assert len(submitted[0]) == len(submitted[1]) == 40
    assert view.counts["total"] == view.counts["completed"] == 80
    assert set(Job.objects.filter(batch=batch).values_list("pk", flat=True)) == {*submitted[0], *submitted[1]}
    assert view.batch.unended == 0 and callbacks_enqueued() == ["complete", "success"]


def test_finished_batches_are_counted_by_outcome(broker: Broker) -> None:
    from prometheus_client import REGISTRY

    def finished(outcome: str) -> float:
        return REGISTRY.get_sample_value("job_queue_batches_finished_total", {"outcome": outcome}) or 0.0

    before = finished("success"), finished("failure")
    good = client.create_batch(jobs=[{"type": "test_noop"}], **CALLBACKS)
    bad = client.create_batch(jobs=[{"type": "test_noop"}], **CALLBACKS)
    [one], [other] = members(good), members(bad)
    run_attempt(one, "completed")
    run_attempt(other, "failed", error="boom")
    assert (finished("success"), finished("failure")) == (before[0] + 1, before[1] + 1)


def test_retention_keeps_the_jobs_of_a_batch_that_has_not_finished(broker: Broker) -> None:
    """Its counters are counted from its jobs' rows: an old completed job of an open batch stays."""
    from datetime import timedelta

    from scheduler import retention

    day = 86_400.0
    batch = client.create_batch(jobs=[{"type": "test_noop"}, {"type": "test_noop"}], open=True)
    first, second = members(batch)
    run_attempt(first, "completed")
    Job.objects.update(completed_at=timezone.now() - timedelta(days=30))
    assert retention.purge(completed_age=7 * day, failed_age=30 * day, batch=100).total == 0
    assert service.get_batch(batch.pk).counts["completed"] == 1
    run_attempt(second, "completed")
    service.close_batch(batch.pk)
    assert service.get_batch(batch.pk).status == "succeeded"
    Job.objects.filter(batch=batch).update(completed_at=timezone.now() - timedelta(days=30))
    assert retention.purge(completed_age=7 * day, failed_age=30 * day, batch=100).total == 2, "finished: they go"
