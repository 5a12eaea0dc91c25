"""Workflows and batches on the real worker pool (processes, signals, Redis): a diamond runs in order
and its last job reads both parents' results; a worker process SIGKILLed mid-workflow, and Redis
flushed while a workflow waits, still let every job of it finish; a batch through those faults and a
scheduler restart fires each of its callbacks once."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path
from typing import Any, cast

import pytest

from jobs import client
from jobs.broker import Broker, get_broker
from jobs.models import Batch, Job, JobAttempt, Outcome, Status, Workflow
from tests.helpers import wait_for
from tests.procs import running, wait_for_workers
from tests.test_scheduler_support import HAVE_RUNWORKERS, NO_RUNWORKERS

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.skipif(not HAVE_RUNWORKERS, reason=NO_RUNWORKERS),
]

RETRY = {"max_retries": 3, "initial_delay": "100ms", "jitter": False}


def step(ref: str, key: str, *parents: str, **payload: Any) -> dict[str, Any]:
    job: dict[str, Any] = {"ref": ref, "type": "test_flow", "payload": {"key": key, "tag": ref, **payload}}
    job["retry"] = RETRY
    if parents:
        job["depends_on"] = list(parents)
    return job


def events(broker: Broker, key: str) -> dict[tuple[str, str], float]:
    """(job id, event) -> when, from the ledger the processors write (the last of repeated events)."""
    out: dict[tuple[str, str], float] = {}
    for raw in cast(list[bytes], broker.client.lrange(key, 0, -1)):
        job_id, _attempt, _pid, event, when, _tag = raw.decode().split("|")
        out[(job_id, event)] = float(when)
    return out


def all_done(flow: Workflow) -> bool:
    return not Job.objects.filter(workflow=flow).exclude(pk__in=Job.objects.finished().values("pk")).exists()


def by_ref(flow: Workflow) -> dict[str, Job]:
    return {job.workflow_ref: job for job in Job.objects.filter(workflow=flow)}


def test_a_diamond_runs_in_order_and_its_last_job_reads_both_parents(broker: Broker, tmp_path: Path) -> None:
    key = f"{broker.prefix}:ledger-{uuid.uuid4().hex[:8]}"
    flow = client.workflow(
        [
            step("a", key),
            step("b", key, "a", seconds=0.3),
            step("c", key, "a", seconds=0.1),
            step("d", key, "b", "c"),
        ]
    )
    with running(["runworkers", "--processes", "2", "--concurrency", "4"], tmp_path, "workers") as workers:
        wait_for(lambda: all_done(flow), 30, message=workers.log()[-3000:])
    jobs = by_ref(flow)
    assert {ref: j.status for ref, j in jobs.items()} == dict.fromkeys("abcd", Status.COMPLETED)
    seen = events(broker, key)
    a, b, c, d = (str(jobs[r].pk) for r in "abcd")
    assert seen[(b, "start")] >= seen[(a, "end")] and seen[(c, "start")] >= seen[(a, "end")]
    assert seen[(d, "start")] >= max(seen[(b, "end")], seen[(c, "end")]), "d starts after both b and c"
    result = jobs["d"].result
    assert isinstance(result, dict)
    parents = result["parents"]
    assert parents["b"]["tag"] == "b" and parents["c"]["tag"] == "c"
    assert parents[b] == parents["b"] and parents[c] == parents["c"], "keyed by id and by ref"


def test_a_worker_sigkilled_mid_workflow_still_finishes_it(broker: Broker, tmp_path: Path) -> None:
    key = f"{broker.prefix}:ledger-{uuid.uuid4().hex[:8]}"
    flow = client.workflow([step("a", key), step("b", key, "a", seconds=3), step("c", key, "b")])
    with running(["runworkers", "--processes", "1", "--concurrency", "2"], tmp_path, "workers") as workers:
        wait_for_workers(broker, 1, proc=workers)
        b = by_ref(flow)["b"]
        wait_for(lambda: (str(b.pk), "start") in events(broker, key), 20, message=workers.log()[-3000:])
        [child] = workers.children()
        os.kill(child, signal.SIGKILL)  # the process running b; the supervisor replaces it
        wait_for(lambda: all_done(flow), 40, message=workers.log()[-3000:])
    jobs = by_ref(flow)
    assert {ref: j.status for ref, j in jobs.items()} == dict.fromkeys("abc", Status.COMPLETED)
    outcomes = list(JobAttempt.objects.filter(job=jobs["b"]).order_by("number").values_list("outcome", flat=True))
    assert outcomes == [Outcome.LOST, Outcome.COMPLETED]
    assert JobAttempt.objects.filter(job=jobs["c"]).count() == 1


def test_redis_flushed_while_a_workflow_waits_then_it_completes(own_redis: Any, tmp_path: Path) -> None:
    broker = get_broker()
    key = f"ledger-{uuid.uuid4().hex[:8]}"
    flow = client.workflow(
        [step("a", key, seconds=1.5), step("b", key, "a"), step("c", key, "a"), step("d", key, "b", "c")]
    )
    with (
        running(["runworkers", "--processes", "1", "--concurrency", "4"], tmp_path, "workers"),
        running(["runscheduler"], tmp_path, "scheduler", JQS_SCHEDULER_POLL_INTERVAL="500ms") as scheduler,
    ):
        wait_for(lambda: by_ref(flow)["a"].status == Status.RUNNING, 20, message=scheduler.log()[-2000:])
        broker.client.flushall()
        wait_for(broker.epoch_present, 10, message=scheduler.log()[-2000:])
        blocked = [str(j.pk) for j in Job.objects.filter(workflow=flow).blocked()]
        assert len(blocked) == 3 and not any(broker.client.zscore(broker.keys("default").ready, i) for i in blocked)
        wait_for(lambda: all_done(flow), 40, message=scheduler.log()[-2000:])
    assert {ref: j.status for ref, j in by_ref(flow).items()} == dict.fromkeys("abcd", Status.COMPLETED)


def test_a_batch_through_a_sigkill_and_a_redis_flush_fires_each_callback_once(own_redis: Any, tmp_path: Path) -> None:
    """Issue 15's batch test, sized by ZIPLINE_BATCH_JOBS (2,000 by default; the issue's figure is
    10,000): two pools, one worker process SIGKILLed, Redis flushed and the scheduler SIGKILLed and started
    again while the batch runs."""
    broker = get_broker()
    size = int(os.environ.get("ZIPLINE_BATCH_JOBS", "2000"))
    callbacks: dict[str, Any] = {
        name: {"type": "test_noop", "payload": {"cb": name}} for name in ("on_success", "on_failure", "on_complete")
    }
    batch = client.create_batch("soak", open=True, **callbacks)
    for start in range(0, size, 1000):
        jobs = [
            {"type": "test_flow", "payload": {"seconds": 0.002}, "retry": RETRY} for _ in range(min(1000, size - start))
        ]
        client.enqueue_many([{**job, "batch": str(batch.pk)} for job in jobs])
    client.close_batch(batch.pk)
    pool = ["runworkers", "--processes", "2", "--concurrency", "4"]
    scheduler_command = ["runscheduler"]
    with running(pool, tmp_path, "pool-a") as first, running(pool, tmp_path, "pool-b"):
        done = Job.objects.filter(batch=batch).finished()
        with running(scheduler_command, tmp_path, "scheduler", JQS_SCHEDULER_POLL_INTERVAL="500ms") as scheduler:
            wait_for(lambda: done.count() > size // 4, 60, message=first.log()[-2000:])
            os.kill(first.children()[0], signal.SIGKILL)
            wait_for(lambda: done.count() > size // 2, 60, message=first.log()[-2000:])
            broker.client.flushall()
            scheduler.signal(signal.SIGKILL)  # the scheduler dies with Redis's data gone: another rebuilds
            scheduler.wait(10)
        with running(scheduler_command, tmp_path, "scheduler-2", JQS_SCHEDULER_POLL_INTERVAL="500ms") as scheduler:
            finished = lambda: Batch.objects.get(pk=batch.pk).finished_at is not None  # noqa: E731
            wait_for(finished, 120, message=scheduler.log()[-2000:])
    fired = sorted(Job.objects.filter(batch=None, payload__has_key="cb").values_list("payload__cb", flat=True))
    assert fired == ["on_complete", "on_success"]
    assert Job.objects.filter(batch=batch, status=Status.COMPLETED).count() == size
