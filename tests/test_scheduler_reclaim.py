"""Reclaim: an expired lease sends a running job through its retry policy as an attempt lost to the
worker; a finished job's lease is just dropped; each lease is reclaimed once with several schedulers."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from django.db import connection

from jobs import client, states
from jobs.broker import Broker, PushItem
from jobs.models import Job, JobAttempt, Outcome, Status
from scheduler import reclaim
from scheduler.reclaim import LOST_REASON
from tests.helpers import DrivenClock, override_zipline, wait_for
from tests.procs import ROOT, process_env
from tests.test_scheduler_support import Ledger, SchedulerThread, work_once

pytestmark = pytest.mark.django_db(transaction=True)

RETRY = {"max_retries": 2, "backoff": "fixed", "initial_delay": "30s", "jitter": False}


def claimed(broker: Broker, n: int, token: str, lease_ms: int, **extra: object) -> list[Job]:
    jobs = [client.enqueue("test_noop", {"i": i}, **extra) for i in range(n)]
    ids = broker.claim("default", token, n, lease_ms).ids
    assert sorted(ids) == sorted(str(j.pk) for j in jobs)
    return states.claim(ids, token)


def test_expired_lease_of_a_running_job_is_charged_and_retried(broker: Broker, clock: DrivenClock) -> None:
    [job] = claimed(broker, 1, "dead-worker", 50, retry=RETRY)
    clock.advance(49)
    assert reclaim.reclaim(broker, batch=100).reclaimed == []
    clock.advance(1)
    report = reclaim.reclaim(broker, batch=100)
    assert [(r.job_id, r.worker, r.status) for r in report.reclaimed] == [(str(job.pk), "dead-worker", Status.RETRYING)]
    row = Job.objects.get(pk=job.pk)
    assert row.status == Status.RETRYING and row.error == LOST_REASON
    attempt = JobAttempt.objects.get(job=job)
    assert (attempt.number, attempt.outcome, attempt.worker) == (1, Outcome.LOST, "dead-worker")
    state = broker.ids("default")
    assert state == {"ready": set(), "delayed": {str(job.pk)}, "leases": set()}
    score = broker.client.zscore(broker.keys("default").delayed, str(job.pk))
    assert score == pytest.approx(row.schedule_at.timestamp() * 1000, abs=1)  # type: ignore[union-attr]


def test_lost_attempts_count_toward_the_retry_limit(broker: Broker, clock: DrivenClock) -> None:
    [job] = claimed(broker, 1, "w", 50, retry={"max_retries": 0})
    clock.advance(50)
    [result] = reclaim.reclaim(broker, batch=100).reclaimed
    assert result.status == Status.FAILED
    assert Job.objects.get(pk=job.pk).status == Status.FAILED
    assert broker.ids("default") == {"ready": set(), "delayed": set(), "leases": set()}


def test_a_finished_jobs_lease_is_just_dropped(broker: Broker, clock: DrivenClock) -> None:
    [job] = claimed(broker, 1, "w", 50)
    now = job.started_at
    states.record([states.AttemptResult(job, Outcome.COMPLETED, now, now, 0.0)])  # type: ignore[arg-type]
    clock.advance(50)  # the worker died before its ack
    [result] = reclaim.reclaim(broker, batch=100).reclaimed
    assert result.status is None
    assert Job.objects.get(pk=job.pk).status == Status.COMPLETED
    assert JobAttempt.objects.filter(job=job).count() == 1
    assert broker.ids("default") == {"ready": set(), "delayed": set(), "leases": set()}


def test_a_job_claimed_in_redis_but_never_marked_running_goes_back(broker: Broker, clock: DrivenClock) -> None:
    job = client.enqueue("test_noop", {})
    broker.claim("default", "w", 1, 50)  # the worker died before states.claim
    clock.advance(50)
    reclaim.reclaim(broker, batch=100)
    assert Job.objects.get(pk=job.pk).status == Status.PENDING
    assert broker.ids("default")["ready"] == {str(job.pk)}


def test_live_leases_and_malformed_ids_are_handled(broker: Broker, clock: DrivenClock) -> None:
    [live] = claimed(broker, 1, "alive", 60_000)
    broker.push([PushItem("default", "not-a-uuid")])
    broker.claim("default", "w", 1, 10)
    clock.advance(10)
    [garbage] = reclaim.reclaim(broker, batch=100).reclaimed
    assert (garbage.job_id, garbage.status) == ("not-a-uuid", None)
    assert broker.ids("default")["leases"] == {str(live.pk)}
    assert Job.objects.get(pk=live.pk).status == Status.RUNNING


def test_concurrent_reclaimers_reclaim_each_lease_once(broker: Broker, clock: DrivenClock) -> None:
    jobs = claimed(broker, 300, "dead", 50, retry=RETRY)
    clock.advance(50)
    barrier = threading.Barrier(3)
    results: list[list[reclaim.Reclaimed]] = [[], [], []]

    def run(index: int) -> None:
        try:
            barrier.wait()
            for _ in range(5):
                results[index] += reclaim.reclaim(broker, batch=20).reclaimed
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    ids = [r.job_id for rs in results for r in rs]
    assert sorted(ids) == sorted(str(j.pk) for j in jobs)
    assert JobAttempt.objects.filter(outcome=Outcome.LOST).count() == 300
    assert Job.objects.filter(status=Status.RETRYING).count() == 300


WORKER_SCRIPT = textwrap.dedent(
    """
    import time, django
    django.setup()
    from jobs import states
    from jobs.broker import get_broker
    broker = get_broker()
    claim = broker.claim("default", "doomed-worker", 10, 1500)
    jobs = states.claim(claim.ids, "doomed-worker")
    print("claimed", len(jobs), flush=True)
    time.sleep(600)
    """
)


def test_lease_expires_after_sigkill_of_a_worker_and_the_job_completes_once(broker: Broker) -> None:
    """A worker process (doing what a worker does) is SIGKILLed with 3 jobs; no supervisor recovers them."""
    jobs = [
        client.enqueue("test_noop", {"i": i}, retry={"max_retries": 3, "initial_delay": "200ms", "jitter": False})
        for i in range(3)
    ]
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER_SCRIPT], cwd=ROOT, env=process_env(), stdout=subprocess.PIPE, text=True
    )
    try:
        assert worker.stdout is not None and worker.stdout.readline().strip() == "claimed 3"
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    killed = time.monotonic()
    assert Job.objects.filter(status=Status.RUNNING).count() == 3
    ledger = Ledger()
    with override_zipline(scheduler_reclaim_interval=0.2):
        scheduler = SchedulerThread(identity="reclaimer")
        scheduler.start()
        try:
            wait_for(lambda: not Job.objects.filter(status=Status.RUNNING).exists(), 10, message="jobs reclaimed")
            recovered = time.monotonic() - killed
            # Lease 1.5 s + one reclaim interval, with slack for the machine.
            assert recovered < 1.5 + 0.2 + 1.5, recovered

            def rescue() -> bool:
                work_once(broker, "default", "rescuer", ledger)  # a healthy worker, claiming what comes
                return not Job.objects.exclude(status=Status.COMPLETED).exists()

            wait_for(rescue, 10, message="all completed")
        finally:
            scheduler.stop()
    for job in jobs:
        outcomes = list(JobAttempt.objects.filter(job=job).order_by("number").values_list("outcome", "error"))
        assert outcomes == [(Outcome.LOST, LOST_REASON), (Outcome.COMPLETED, "")]
        assert ledger.runs[str(job.pk)] == 1
    assert broker.ids("default") == {"ready": set(), "delayed": set(), "leases": set()}


def test_reclaim_in_the_runscheduler_process(broker: Broker, tmp_path: Path) -> None:
    from tests.procs import running

    [job] = claimed(broker, 1, "gone", 300, retry=RETRY)
    with running(["runscheduler"], tmp_path, "scheduler", JQS_SCHEDULER_RECLAIM_INTERVAL="200ms") as proc:
        wait_for(lambda: Job.objects.get(pk=job.pk).status == Status.RETRYING, 10, message=proc.log()[-2000:])
        wait_for(lambda: "reclaimed expired lease" in proc.log(), 5)
    assert broker.ids("default")["delayed"] == {str(job.pk)}
