"""``depends_on`` with a due time (``schedule_at`` or ``delay``, docs/workflows.md): the job waits blocked
for its parents, then is scheduled until its due time, or pending if that time has passed; through
``jobs.enqueue``, the API and a workflow, and on the real worker pool."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from jobs import client
from jobs.broker import Broker
from jobs.lifecycle import Status
from jobs.models import Job
from tests.helpers import run_attempt, wait_for
from tests.procs import running, wait_for_workers
from tests.test_scheduler_support import HAVE_RUNWORKERS, NO_RUNWORKERS

pytestmark = pytest.mark.django_db(transaction=True)


def where(broker: Broker, job: Job) -> str:
    """Which of the queue's sets holds the job's id in Redis: "ready", "delayed" or ""."""
    keys = broker.keys(job.queue)
    if broker.client.zscore(keys.ready, str(job.pk)) is not None:
        return "ready"
    if broker.client.zscore(keys.delayed, str(job.pk)) is not None:
        return "delayed"
    return ""


def test_a_child_with_a_delay_is_scheduled_once_its_parent_completes(broker: Broker) -> None:
    parent = client.enqueue("test_noop", {})
    child = client.enqueue("test_noop", {}, depends_on=[str(parent.pk)], delay="1h")
    assert child.status == Status.BLOCKED and child.schedule_at is not None
    assert where(broker, child) == "", "blocked: not in Redis, even delayed"
    run_attempt(parent, "completed")
    row = Job.objects.get(pk=child.pk)
    assert row.status == Status.SCHEDULED and row.schedule_at == child.schedule_at
    assert where(broker, child) == "delayed"


def test_a_child_whose_due_time_passed_while_it_waited_is_pending(broker: Broker) -> None:
    parent = client.enqueue("test_noop", {})
    soon = timezone.now() + timedelta(milliseconds=300)
    child = client.enqueue("test_noop", {}, depends_on=[str(parent.pk)], schedule_at=soon.isoformat())
    assert child.status == Status.BLOCKED
    wait_for(lambda: timezone.now() > soon, 5, message="the due time passed")
    run_attempt(parent, "completed")
    row = Job.objects.get(pk=child.pk)
    assert row.status == Status.PENDING and row.schedule_at is None
    assert where(broker, child) == "ready"


def test_a_delayed_child_released_anyway_or_settled_at_submit_keeps_its_due_time(broker: Broker) -> None:
    """The other ways a child is released: on_parent_failure "run", and parents ended before the submit."""
    failing = client.enqueue("test_noop", {})
    runs_anyway = client.enqueue("test_noop", {}, depends_on=[str(failing.pk)], on_parent_failure="run", delay="1h")
    cancelled = client.enqueue("test_noop", {}, depends_on=[str(failing.pk)], delay="1h")
    run_attempt(failing, "failed", error="boom")
    assert Job.objects.get(pk=runs_anyway.pk).status == Status.SCHEDULED
    assert where(broker, runs_anyway) == "delayed"
    gone = Job.objects.get(pk=cancelled.pk)
    assert gone.status == Status.CANCELLED and gone.schedule_at is None and where(broker, gone) == ""
    done = client.enqueue("test_noop", {})
    run_attempt(done, "completed")
    late = client.enqueue("test_noop", {}, depends_on=[str(done.pk)], delay="1h")
    assert late.status == Status.SCHEDULED and where(broker, late) == "delayed"


def test_the_api_and_a_workflow_take_depends_on_with_a_due_time(api: Any, broker: Broker) -> None:
    parent = client.enqueue("test_noop", {})
    answer = api.post(
        "/api/v1/jobs", {"type": "test_noop", "depends_on": [str(parent.pk)], "delay": "1h"}, format="json"
    )
    assert answer.status_code == 201, answer.content
    assert answer.json()["status"] == "waiting" and answer.json()["schedule_at"] is not None
    at = (timezone.now() + timedelta(hours=2)).isoformat()
    body = {
        "jobs": [
            {"ref": "a", "type": "test_noop"},
            {"ref": "b", "type": "test_noop", "depends_on": ["a"], "schedule_at": at},
        ]
    }
    created = api.post("/api/v1/workflows", body, format="json")
    assert created.status_code == 201, created.content
    a, b = (Job.objects.get(pk=j["id"]) for j in created.json()["jobs"])
    assert b.status == Status.BLOCKED
    run_attempt(a, "completed")
    b.refresh_from_db()
    assert b.status == Status.SCHEDULED and b.schedule_at is not None and where(broker, b) == "delayed"


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_RUNWORKERS, reason=NO_RUNWORKERS)
def test_on_real_workers_a_delayed_child_runs_after_its_parent_and_not_before_its_due_time(
    broker: Broker, tmp_path: Path
) -> None:
    with running(["runworkers", "--processes", "1", "--concurrency", "4"], tmp_path, "workers") as workers:
        wait_for_workers(broker, 1, proc=workers)
        parent = client.enqueue("test_flow", {"seconds": 0.3})
        due = timezone.now() + timedelta(seconds=3)
        child = client.enqueue("test_flow", {}, depends_on=[str(parent.pk)], schedule_at=due.isoformat())
        passed = client.enqueue("test_flow", {}, depends_on=[str(parent.pk)], delay="50ms")
        wait_for(lambda: Job.objects.filter(pk=passed.pk).finished().exists(), 20, message=workers.log()[-3000:])
        seen, at = Job.objects.get(pk=child.pk).status, timezone.now()
        assert seen == Status.SCHEDULED or at >= due, f"{seen} at {at}, its due time ({due}) ahead"
        wait_for(lambda: Job.objects.filter(pk=child.pk).finished().exists(), 20, message=workers.log()[-3000:])
    rows = {job.pk: job for job in Job.objects.filter(pk__in=[parent.pk, child.pk, passed.pk])}
    assert {job.status for job in rows.values()} == {Status.COMPLETED}
    parent_done = rows[parent.pk].completed_at
    assert parent_done is not None
    started = rows[child.pk].started_at
    assert started is not None and started >= due, "not before its due time"
    late = rows[passed.pk].started_at
    assert late is not None and late >= parent_done, "after its parent, at once: its due time had passed"
