"""Redis is disposable: the reconciler rebuilds it from the database after a loss (FLUSHALL, a restart
without persistence), closes the window between a committed row and its Redis entry, and drops orphans.
Tests that flush or restart Redis use a redis-server of their own (the ``own_redis`` fixture)."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from jobs import client, states
from jobs.broker import Broker, PushItem, Settlement, get_broker
from jobs.models import Job, JobAttempt, Outcome, QueueState, Status
from jobs.validation import JobSpec
from scheduler import reconcile
from tests.helpers import override_zipline, wait_for
from tests.procs import ROOT, process_env, running
from tests.test_scheduler_support import Ledger, SchedulerThread, WorkerThread, work_once

pytestmark = pytest.mark.django_db(transaction=True)

LEASE = 30.0


def wipe(broker: Broker) -> None:
    """Lose every key of this broker's prefix: FLUSHALL, as seen by one deployment on a shared Redis."""
    keys = list(broker.client.scan_iter(match=f"{broker.prefix}:*", count=1000))
    if keys:
        broker.client.delete(*keys)


def rebuild(broker: Broker, **kwargs: Any) -> reconcile.ReconcileReport:
    report = reconcile.rebuild(broker, owner="test", lease_ttl=LEASE, batch=kwargs.pop("batch", 100), **kwargs)
    assert report is not None
    return report


def make_every_state(broker: Broker) -> dict[str, list[Job]]:
    """One queue with jobs in every state, made the way clients and workers make them."""
    groups: dict[str, list[Job]] = {}
    retry = {"max_retries": 3, "backoff": "fixed", "initial_delay": "1h", "jitter": False}
    # Finished ones first, while the queue holds nothing else.
    groups["completed"] = [client.enqueue("test_noop", {"g": "completed"})]
    work_once(broker, "default", "setup", Ledger())
    groups["failed"] = [client.enqueue("test_noop", {"g": "failed"}, retry={"max_retries": 0})]
    work_once(broker, "default", "setup", Ledger(), outcome=lambda j: Outcome.FAILED)
    groups["cancelled"] = [client.cancel(client.enqueue("test_noop", {"g": "cancelled"}).pk)]
    groups["retrying"] = [client.enqueue("test_noop", {"g": "retrying"}, retry=retry)]
    work_once(broker, "default", "setup", Ledger(), outcome=lambda j: Outcome.FAILED)
    groups["running"] = [client.enqueue("test_noop", {"g": "running"}, priority=50)]
    states.claim(broker.claim("default", "runner", 1, 60_000).ids, "runner")
    groups["scheduled"] = [client.enqueue("test_noop", {"g": "scheduled"}, delay=3600)]
    groups["pending"] = [
        client.enqueue("test_noop", {"g": "pending", "i": i}, priority=p) for i, p in enumerate([0, 10, 0, -5, 10, 0])
    ]
    for name, jobs in groups.items():
        assert {Job.objects.get(pk=j.pk).status for j in jobs} == {name}, name
    return groups


def ids(jobs: list[Job]) -> set[str]:
    return {str(j.pk) for j in jobs}


def test_rebuild_restores_ready_delayed_and_leases_from_the_database(broker: Broker) -> None:
    groups = make_every_state(broker)
    QueueState.objects.create(name="default", paused=True)
    before = {
        k: broker.client.zscore(broker.keys("default").delayed, str(j.pk))
        for k in ("scheduled", "retrying")
        for j in groups[k]
    }
    wipe(broker)
    assert not broker.epoch_present()
    report = reconcile.ensure_epoch(broker, owner="test", lease_ttl=LEASE, batch=2)
    assert report is not None and report.complete and broker.epoch_present()
    assert report.total_restored == 6 + 1 + 1 + 1
    state = broker.ids("default")
    assert state == {
        "ready": ids(groups["pending"]),
        "delayed": ids(groups["scheduled"] + groups["retrying"]),
        "leases": ids(groups["running"]),
    }
    # Delayed jobs keep their due times (they must not fire early), leases their owner.
    for key, score in before.items():
        assert broker.client.zscore(broker.keys("default").delayed, str(groups[key][0].pk)) == score
    assert broker.renew("default", "runner", [str(groups["running"][0].pk)], 1000) == []
    # Paused again; then, resumed, pending jobs come out by priority, then FIFO.
    assert broker.depths("default")["paused"] == 1
    broker.set_paused("default", False)
    taken = broker.claim("default", "w", 10, 1000).ids
    pending = groups["pending"]
    assert taken == [str(pending[i].pk) for i in (1, 4, 0, 2, 5, 3)]
    # Nothing more to do a second time.
    assert rebuild(broker).total_restored == 0


def test_a_new_redis_for_a_database_without_jobs_is_initialised_not_lost(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="zipline.scheduler")
    assert not Job.objects.exists() and not broker.epoch_present()
    report = reconcile.ensure_epoch(broker, owner="test", lease_ttl=LEASE, batch=10)
    assert report is not None and report.complete and broker.epoch_present()
    records = [r for r in caplog.records if r.name == "zipline.scheduler"]
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.INFO, "Redis has no epoch marker and the database no jobs; initialising"),
        (logging.INFO, "Redis initialised"),
    ]


def test_a_redis_that_lost_the_jobs_of_the_database_is_a_warning(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="zipline.scheduler")
    job = client.enqueue("test_noop", {})
    wipe(broker)
    report = reconcile.ensure_epoch(broker, owner="test", lease_ttl=LEASE, batch=10)
    assert report is not None and broker.ids("default")["ready"] == {str(job.pk)}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "Redis has lost its data (no epoch marker); rebuilding from the database" in warnings
    assert "Redis rebuilt from the database" in warnings


def test_rebuild_gives_way_to_a_rebuild_in_progress(broker: Broker) -> None:
    from jobs.broker.locks import Lock

    other = Lock(broker, "rebuild", "other-scheduler", 10)
    assert other.acquire()
    assert reconcile.rebuild(broker, owner="me", lease_ttl=LEASE, batch=100) is None
    assert not broker.epoch_present()
    other.release()
    assert reconcile.rebuild(broker, owner="me", lease_ttl=LEASE, batch=100) is not None


def test_a_loss_during_the_rebuild_is_rebuilt_again(own_redis: Any) -> None:
    broker = get_broker()
    jobs = client.enqueue_many([JobSpec("test_noop", {"i": i}) for i in range(30)])
    original = broker.restore
    calls = [0]

    def restore_then_lose_everything(*args: Any, **kwargs: Any) -> int:
        calls[0] += 1
        created = original(*args, **kwargs)
        if calls[0] == 1:
            broker.client.flushall()
        return created

    broker.client.flushall()
    broker.restore = restore_then_lose_everything  # type: ignore[method-assign]
    try:
        report = reconcile.ensure_epoch(broker, owner="test", lease_ttl=LEASE, batch=10)
    finally:
        del broker.restore
    assert report is not None and not report.complete
    assert not broker.epoch_present()  # so the next step rebuilds again
    report = reconcile.ensure_epoch(broker, owner="test", lease_ttl=LEASE, batch=10)
    assert report is not None and report.complete
    assert broker.ids("default")["ready"] == ids(jobs)


def test_scheduler_rebuilds_after_flushall_and_restart_within_a_poll_interval(own_redis: Any) -> None:
    jobs = client.enqueue_many([JobSpec("test_noop", {"i": i}) for i in range(20)])
    later = client.enqueue("test_noop", {}, delay=3600)
    broker = get_broker()
    with override_zipline(scheduler_poll_interval=2.0, scheduler_reclaim_interval=0.5):
        scheduler = SchedulerThread(identity="rebuilder")
        scheduler.start()
        try:
            wait_for(broker.epoch_present, 5)
            for loss in ("flushall", "restart"):
                if loss == "flushall":
                    broker.client.flushall()
                else:
                    own_redis.restart()
                lost = time.monotonic()
                wait_for(lambda: broker.ids("default")["ready"] == ids(jobs), 10, 0.02, message=f"rebuilt after {loss}")
                assert time.monotonic() - lost < 2.0
                assert broker.ids("default")["delayed"] == {str(later.pk)}
                wait_for(broker.epoch_present, 2, 0.01, message="epoch marked after the rebuild")
        finally:
            scheduler.stop()
    assert scheduler.error is None


def test_rows_committed_but_never_pushed_are_restored_after_the_grace(broker: Broker) -> None:
    # A process died between COMMIT and its Redis push: the rows exist, Redis never heard of them.
    lost = Job.objects.create(type="test_noop", queue="q1")
    lost_later = Job.objects.create(
        type="test_noop", queue="q1", status=Status.SCHEDULED, schedule_at=timezone.now() + timedelta(hours=1)
    )
    # A transaction that rolled back after submitting: nothing to restore, ever.
    with pytest.raises(RuntimeError), transaction.atomic():
        client.enqueue("test_noop", {"rolled": "back"}, queue="q1")
        raise RuntimeError("rollback")
    now = timezone.now()
    early = reconcile.reconcile(broker, grace=10, lease_ttl=LEASE, batch=100, now=now)
    assert early.total_restored == 0 and broker.ids("q1")["ready"] == set()
    late = reconcile.reconcile(broker, grace=10, lease_ttl=LEASE, batch=100, now=now + timedelta(seconds=11))
    assert late.total_restored == 2
    assert broker.ids("q1") == {"ready": {str(lost.pk)}, "delayed": {str(lost_later.pk)}, "leases": set()}
    assert Job.objects.count() == 2


CRASHING_CLIENT = textwrap.dedent(
    """
    import os, django
    django.setup()
    import jobs.client, jobs.service.submission
    jobs.service.submission.dispatch = lambda rows: os._exit(17)  # die right after COMMIT, before Redis
    job = jobs.client.enqueue("test_noop", {"crash": "window"}, queue="crashq")
    print("unreachable", job.pk, flush=True)
    """
)


def test_a_client_killed_between_commit_and_redis_is_dispatched_by_the_scheduler(
    broker: Broker, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CRASHING_CLIENT], cwd=ROOT, env=process_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 17, done.stderr
    job = Job.objects.get(payload={"crash": "window"})
    assert job.status == Status.PENDING and broker.ids("crashq")["ready"] == set()
    broker.mark_epoch()  # Redis lost nothing: only the periodic reconcile can find the row
    committed = time.monotonic()
    env = {"JQS_SCHEDULER_RECONCILE_GRACE": "1s", "JQS_SCHEDULER_POLL_INTERVAL": "1s"}
    with running(["runscheduler"], tmp_path, "scheduler", **env) as proc:
        wait_for(lambda: broker.ids("crashq")["ready"] == {str(job.pk)}, 15, message=proc.log()[-2000:])
        # Grace (1 s) plus one poll interval (1 s) plus start-up of the process.
        assert time.monotonic() - committed < 10
        # The line follows the restore in Redis: wait for it before the process is stopped.
        wait_for(lambda: "restored jobs missing from Redis" in proc.log(), 10, message=proc.log()[-2000:])
    assert "rebuilding from the database" not in proc.log()


def test_orphan_ids_are_dropped_and_live_ones_kept(broker: Broker) -> None:
    finished = client.enqueue("test_noop", {})
    work_once(broker, "default", "w", Ledger(), count=1)
    keep_later = client.enqueue("test_noop", {}, delay=3600)
    fresh = client.enqueue("test_noop", {})
    deleted = client.enqueue("test_noop", {}, delay=3600)
    Job.objects.filter(pk=deleted.pk).delete()
    cancelled = client.enqueue("test_noop", {})
    states.cancel(cancelled.pk)  # cancelled, but its id was never taken out of Redis
    # A finished job's id back in Redis (a stale restore), and ids no row explains.
    broker.push(
        [
            PushItem("default", str(finished.pk)),
            PushItem("default", "garbage-id"),
            PushItem("default", str(uuid.uuid4())),
        ]
    )
    now = timezone.now()
    # Within the grace, rows that finished just now are left alone (their writer may not be done).
    soon = reconcile.reconcile(broker, grace=10, lease_ttl=LEASE, batch=100, now=now)
    assert soon.orphans == 3  # the garbage id, the unknown uuid, the deleted row
    later = reconcile.reconcile(broker, grace=10, lease_ttl=LEASE, batch=2, now=now + timedelta(seconds=11))
    assert later.orphans == 2  # the completed and the cancelled job
    assert broker.ids("default") == {"ready": {str(fresh.pk)}, "delayed": {str(keep_later.pk)}, "leases": set()}


def test_orphan_ids_are_dropped_from_every_lane_held_or_not(broker: Broker) -> None:
    """In a flow queue ids wait in lanes: in turn, parked by a rate, waiting for a slot. An id there
    whose row is not runnable is dropped like one in ``ready``; the live ones stay where they are."""
    from jobs import queue_limits

    QueueState.objects.create(name="flow", group_concurrency=1, group_rate_limit="1/h")
    jobs = {g: [client.enqueue("test_noop", {}, queue="flow", group=g) for _ in range(3)] for g in "ab"}
    limits = queue_limits.LimitBook().get("flow")
    assert len(broker.claim("flow", "w", 10, 60_000, limits=limits).ids) == 2  # one of each group
    broker.claim("flow", "w", 10, 60_000, limits=limits)  # both groups now held (slot and rate)
    stats = broker.flow_stats(["flow"])["flow"]
    assert len(stats.blocked) + len(stats.parked) == 2, stats
    client.enqueue("test_noop", {}, queue="flow", group="c")  # a lane in turn
    gone, cancelled = jobs["a"][1], jobs["b"][2]
    Job.objects.filter(pk=gone.pk).delete()
    states.cancel(cancelled.pk)  # its id left in its lane
    broker.push([PushItem("flow", str(uuid.uuid4()), 0, 0, "c")])  # an id no row explains
    now = timezone.now()
    report = reconcile.reconcile(broker, grace=10, lease_ttl=LEASE, batch=1, now=now + timedelta(seconds=11))
    assert report.orphans == 3
    left = {i for lane in ("a", "b", "c") for ids in broker.scan_lane("flow", lane, 100) for i in ids}
    assert left == {str(jobs["a"][2].pk), str(jobs["b"][1].pk)} | {
        str(j.pk) for j in Job.objects.filter(queue="flow", group="c")
    }
    assert broker.depths("flow")["ready"] == 3


def test_due_rows_promoted_but_not_marked_are_marked_pending(broker: Broker) -> None:
    job = client.enqueue("test_noop", {}, delay=0.5)
    time.sleep(0.6)
    broker.promote_due("default", 10)  # the scheduler died before states.mark_promoted
    assert Job.objects.get(pk=job.pk).status == Status.SCHEDULED
    report = reconcile.reconcile(broker, grace=10, lease_ttl=LEASE, batch=100)
    assert report.marked_pending == 1 and Job.objects.get(pk=job.pk).status == Status.PENDING


def test_paused_flags_follow_the_database(broker: Broker) -> None:
    QueueState.objects.create(name="stopped", paused=True)
    QueueState.objects.create(name="going", paused=False)
    broker.set_paused("going", True)  # a resume that died before its Redis write
    now = timezone.now()
    reconcile.reconcile(broker, grace=10, lease_ttl=LEASE, batch=100, now=now)
    assert broker.depths("stopped")["paused"] == 0  # changed within the grace: left alone
    reconcile.reconcile(broker, grace=10, lease_ttl=LEASE, batch=100, now=now + timedelta(seconds=11))
    assert broker.depths("stopped")["paused"] == 1 and broker.depths("going")["paused"] == 0


def test_rebuildqueues_command(broker: Broker) -> None:
    groups = make_every_state(broker)
    QueueState.objects.create(name="default", paused=True)
    wipe(broker)
    broker.push([PushItem("default", "garbage-id")])
    out = io.StringIO()
    call_command("rebuildqueues", stdout=out)
    assert "9 entries restored" in out.getvalue() and "1 orphan id(s) dropped" in out.getvalue()
    assert broker.ids("default") == {
        "ready": ids(groups["pending"]),
        "delayed": ids(groups["scheduled"] + groups["retrying"]),
        "leases": ids(groups["running"]),
    }
    assert broker.epoch_present() and broker.depths("default")["paused"] == 1


@pytest.mark.slow
def test_flushall_and_restart_under_load_every_job_completes_exactly_once(own_redis: Any) -> None:
    """F10: 1,000 jobs in every state; Redis loses everything twice while workers run."""
    n = 1000
    broker = get_broker()
    retry = {"max_retries": 3, "backoff": "fixed", "initial_delay": "6s", "jitter": False}
    specs = lambda tag, **kw: [JobSpec("test_noop", {"g": tag, "i": i}, priority=i % 7 - 3, **kw) for i in range(n)]  # noqa: E731
    setup = Ledger()

    def drain(outcome: Outcome) -> None:
        while work_once(broker, "default", "setup", setup, count=500, outcome=lambda j: outcome):
            pass

    client.enqueue_many(specs("completed"))
    drain(Outcome.COMPLETED)
    client.enqueue_many(specs("failed", retry={"max_retries": 0}))
    drain(Outcome.FAILED)
    for job in client.enqueue_many(specs("cancelled")):
        states.cancel(job.pk)
    client.enqueue_many(specs("retrying", retry=retry))
    drain(Outcome.FAILED)
    client.enqueue_many(specs("running"))
    held_ids = broker.claim("default", "held-worker", n, 120_000).ids
    held = states.claim(held_ids, "held-worker")
    scheduled = client.enqueue_many(specs("scheduled", delay=6))
    client.enqueue_many(specs("pending"))
    expiring = client.enqueue_many(specs("expired", expires_in="1m"))
    states.expire(Job.objects.filter(pk__in=[j.pk for j in expiring]), timezone.now() + timedelta(minutes=2))
    broker.remove("default", [str(j.pk) for j in Job.objects.filter(status__in=[Status.CANCELLED, Status.EXPIRED])])
    counts = dict(Job.objects.values_list("status").annotate(n=Count("id")))
    # Every state but blocked (tests/test_workflows.py and tests/test_workflow_workers.py rebuild around those).
    assert counts == dict.fromkeys([s for s in Status.values if s != Status.BLOCKED], n), counts
    finished_before = {
        pk: (status, attempts)
        for pk, status, attempts in Job.objects.filter(
            status__in=[Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.EXPIRED]
        ).values_list("pk", "status", "attempts")
    }
    due = {str(j.pk): j.schedule_at for j in scheduled}
    live = set(Job.objects.exclude(pk__in=finished_before).values_list("pk", flat=True))

    ledger = Ledger()
    with override_zipline(scheduler_poll_interval=2.0, scheduler_reclaim_interval=0.5, worker_lease_ttl=LEASE):
        scheduler = SchedulerThread(identity="under-load")
        workers = [WorkerThread(broker, ["default"], ledger, f"worker-{i}", count=50, lease_ms=5000) for i in range(4)]
        scheduler.start()
        wait_for(broker.epoch_present, 5)
        for w in workers:
            w.start()
        try:
            wait_for(lambda: sum(ledger.runs.values()) >= 200, 30, message="workers busy")
            broker.client.flushall()  # 1st loss: ready, delayed, leases and the epoch are gone
            wait_for(broker.epoch_present, 5, 0.01, message="rebuilt after FLUSHALL")
            assert Job.objects.filter(status__in=[Status.SCHEDULED, Status.RETRYING]).count() == 2 * n
            # The held jobs kept running; their leases were re-created for their worker, who now finishes.
            now = timezone.now()
            recorded = states.record([states.AttemptResult(j, Outcome.COMPLETED, now, now, 0.0) for j in held])
            assert {r.status for r in recorded} == {Status.COMPLETED}
            assert broker.settle("default", "held-worker", [Settlement(str(j.pk), "ack") for j in held]) == [True] * n
            ledger.add([str(j.pk) for j in held])
            own_redis.restart()  # 2nd loss: a restart without persistence
            wait_for(broker.epoch_present, 10, 0.02, message="rebuilt after restart")
            wait_for(
                lambda: Job.objects.filter(pk__in=live, status=Status.COMPLETED).count() == len(live),
                60,
                0.2,
                message="every live job completed",
            )
            wait_for(
                lambda: broker.ids("default") == {"ready": set(), "delayed": set(), "leases": set()},
                20,
                0.2,
                message="Redis drained",
            )
        finally:
            for w in workers:
                w.stop()
            scheduler.stop()
    assert scheduler.error is None
    # Every job that was waiting or running completed exactly once: one execution, one completed attempt.
    assert {str(pk) for pk in live} == set(ledger.runs)
    assert set(ledger.runs.values()) == {1}
    completed_attempts = JobAttempt.objects.filter(job_id__in=live, outcome=Outcome.COMPLETED)
    assert completed_attempts.count() == len(live)
    # Finished jobs were left alone.
    after = dict(Job.objects.filter(pk__in=finished_before).values_list("pk", "status"))
    assert after == {pk: status for pk, (status, _) in finished_before.items()}
    # Delayed jobs did not run early, despite two rebuilds.
    for job in Job.objects.filter(pk__in=[uuid.UUID(k) for k in due]):
        assert job.started_at >= due[str(job.pk)] - timedelta(milliseconds=50)  # type: ignore[operator]
    connection.close()
    assert threading.active_count() < 50
