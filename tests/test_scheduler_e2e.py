"""The scheduler with the real worker pool, all as processes: delayed jobs on time, retry backoff, a
host lost with its jobs in flight (leases expire), and Redis losing everything under load."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any, cast

import pytest
from django.conf import settings
from django.db.models import Count, Q

from jobs import client
from jobs.broker import Broker, get_broker
from jobs.models import Job, JobAttempt, Outcome, Status
from jobs.validation import JobSpec
from scheduler.reclaim import LOST_REASON
from tests.helpers import wait_for
from tests.procs import running
from tests.test_scheduler_support import HAVE_RUNWORKERS, NO_RUNWORKERS

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.skipif(not HAVE_RUNWORKERS, reason=NO_RUNWORKERS),
]

# Idle workers block on Redis for this long, so they do not promote due jobs themselves: the scheduler must.
LAZY_WORKERS = {"JQS_WORKER_POLL_INTERVAL": "30s"}
SLOW_POLL = {"JQS_SCHEDULER_POLL_INTERVAL": "30s"}


def ledger_key() -> str:
    """Under the test's key prefix (the broker fixture's), so its keys are deleted after the test."""
    return f"{settings.ZIPLINE.redis.key_prefix}:ledger-{uuid.uuid4().hex[:8]}"


def starts(broker: Broker, key: str) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for raw in cast(list[bytes], broker.client.lrange(key, 0, -1)):
        job_id, _attempt, _pid, event, when, _tag = raw.decode().split("|")
        if event == "start":
            out.setdefault(job_id, []).append(float(when))
    return out


def test_a_delayed_job_runs_within_a_second_of_its_time(broker: Broker, tmp_path: Path) -> None:
    key = ledger_key()
    with (
        running(["runworkers", "--processes", "1", "--concurrency", "4"], tmp_path, "workers", **LAZY_WORKERS),
        running(["runscheduler"], tmp_path, "scheduler", **SLOW_POLL) as scheduler,
    ):
        wait_for(broker.epoch_present, 20, message=scheduler.log()[-2000:])
        time.sleep(1)  # both idle and asleep
        jobs = [client.enqueue("test_record", {"key": key}, delay=d) for d in (1.5, 3.0)]
        due = {str(j.pk): j.schedule_at.timestamp() for j in jobs}  # type: ignore[union-attr]
        wait_for(lambda: Job.objects.filter(pk__in=[j.pk for j in jobs], status=Status.COMPLETED).count() == 2, 15)
    for job_id, [started] in starts(broker, key).items():
        assert 0 <= started - due[job_id] < 1.0, started - due[job_id]


def test_retry_backoff_is_honoured_end_to_end(broker: Broker, tmp_path: Path) -> None:
    key = ledger_key()
    retry = {"max_retries": 2, "backoff": "fixed", "initial_delay": "1500ms", "jitter": False}
    job = client.enqueue("test_fail", {"key": key}, retry=retry)
    with (
        running(["runworkers", "--processes", "1"], tmp_path, "workers", **LAZY_WORKERS),
        running(["runscheduler"], tmp_path, "scheduler", **SLOW_POLL),
    ):
        wait_for(lambda: Job.objects.get(pk=job.pk).status == Status.FAILED, 30)
    [times] = starts(broker, key).values()
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert len(times) == 3 and all(1.5 <= g < 2.5 for g in gaps), gaps


def test_a_lost_host_s_jobs_come_back_when_their_leases_expire(broker: Broker, tmp_path: Path) -> None:
    """F02: the whole worker pool (supervisor and children) is SIGKILLed; nobody is left to recover its
    jobs but the scheduler, once their leases expire."""
    key = ledger_key()
    jobs = [
        client.enqueue("test_sleep", {"seconds": 1.5, "key": key}, retry={"max_retries": 3, "initial_delay": "100ms"})
        for _ in range(3)
    ]
    lease = {"JQS_WORKER_LEASE_TTL": "2s"}
    with running(["runworkers", "--processes", "1", "--concurrency", "4"], tmp_path, "doomed", **lease) as doomed:
        wait_for(lambda: len(starts(broker, key)) == 3, 15, message=doomed.log()[-2000:])
        os.killpg(doomed.pid, signal.SIGKILL)
        doomed.wait(10)
    killed = time.monotonic()
    assert Job.objects.filter(status=Status.RUNNING).count() == 3
    with (
        running(["runscheduler"], tmp_path, "scheduler", JQS_SCHEDULER_RECLAIM_INTERVAL="500ms"),
        running(["runworkers", "--processes", "1", "--concurrency", "4"], tmp_path, "rescuers", **lease),
    ):
        wait_for(lambda: not Job.objects.filter(status=Status.RUNNING, attempts=1).exists(), 15)
        assert time.monotonic() - killed < 2 + 0.5 + 3  # lease + reclaim interval + slack
        wait_for(lambda: Job.objects.filter(status=Status.COMPLETED).count() == 3, 20)
    for job in jobs:
        attempts = list(JobAttempt.objects.filter(job=job).order_by("number").values_list("outcome", "error"))
        assert attempts == [(Outcome.LOST, LOST_REASON), (Outcome.COMPLETED, "")]


def test_redis_loses_everything_under_load_and_every_job_completes_once(own_redis: Any, tmp_path: Path) -> None:
    """F10 with the real pool: FLUSHALL, then a restart without persistence, while jobs are ready,
    delayed and running. Every job completes, with one completed attempt; extra runs stay within the
    jobs in flight at the faults."""
    broker = get_broker()
    slow = client.enqueue_many([JobSpec("test_sleep", {"seconds": 2}, priority=10) for _ in range(8)])
    ready = client.enqueue_many([JobSpec("test_sleep", {"seconds": 0.05}) for i in range(400)])
    with (
        running(["runworkers", "--processes", "2", "--concurrency", "8"], tmp_path, "workers"),
        running(["runscheduler"], tmp_path, "scheduler", JQS_SCHEDULER_POLL_INTERVAL="2s") as scheduler,
    ):
        wait_for(lambda: Job.objects.filter(pk__in=[j.pk for j in slow], status=Status.RUNNING).exists(), 20)
        # Submitted only now, so they are still delayed at the fault however long the pool took to start.
        later = client.enqueue_many([JobSpec("test_noop", {"later": i}, delay=4) for i in range(200)])
        everything = [j.pk for j in ready + slow + later]
        depths = broker.depths("default")
        assert depths["ready"] and depths["delayed"] and depths["leased"], depths  # all three at the fault
        broker.client.flushall()
        wait_for(broker.epoch_present, 5, message=scheduler.log()[-2000:])
        time.sleep(0.5)
        own_redis.restart()
        wait_for(broker.epoch_present, 10, message=scheduler.log()[-2000:])
        wait_for(
            lambda: Job.objects.filter(pk__in=everything, status=Status.COMPLETED).count() == len(everything), 60, 0.2
        )
    completed = dict(
        Job.objects.filter(pk__in=everything)
        .annotate(done=Count("attempt_set", filter=Q(attempt_set__outcome=Outcome.COMPLETED)))
        .values_list("pk", "done")
    )
    assert set(completed.values()) == {1}
    extra = JobAttempt.objects.filter(job_id__in=everything).exclude(outcome=Outcome.COMPLETED).count()
    assert extra <= 2 * 8 + 16  # at most the jobs in flight at each of the two faults
    for job in Job.objects.filter(pk__in=[j.pk for j in later]):
        assert job.started_at >= job.created_at  # type: ignore[operator]
