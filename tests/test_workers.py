"""The worker pool as real processes: real jobs, real signals, a real Redis and database."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, cast

import pytest
from django.conf import settings

from jobs import client
from jobs.broker import Broker
from jobs.models import Job, JobAttempt, Outcome, Status
from tests.helpers import json_records, wait_for
from tests.procs import running, wait_for_workers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def key() -> str:
    """Under the test's key prefix (the broker fixture's), so its keys are deleted after the test."""
    return f"{settings.ZIPLINE.redis.key_prefix}:ledger-{uuid.uuid4().hex[:8]}"


def entries(broker: Broker, name: str) -> list[list[str]]:
    raw = cast(list[bytes], broker.client.lrange(name, 0, -1))
    return [e.decode().split("|") for e in raw]


def statuses(*ids: Any) -> dict[str, str]:
    return {str(j.pk): j.status for j in Job.objects.filter(pk__in=ids)}


def all_status(jobs: list[Job], status: str, timeout: float = 20.0) -> None:
    ids = [j.pk for j in jobs]
    wait_for(
        lambda: Job.objects.filter(pk__in=ids, status=status).count() == len(ids), timeout, message=f"all {status}"
    )


def test_priority_then_fifo_on_a_running_pool(broker: Broker, tmp_path: Path) -> None:
    log = key()
    order = [(0, "a"), (5, "b"), (0, "c"), (10, "d"), (5, "e"), (-3, "f")]
    jobs = [client.enqueue("test_record", {"key": log, "tag": tag}, priority=p) for p, tag in order]
    with running(["runworkers", "--processes", "1", "--concurrency", "1"], tmp_path) as pool:
        all_status(jobs, Status.COMPLETED)
        pool.signal(signal.SIGTERM)
        assert pool.wait(20) == 0
    assert [e[5] for e in entries(broker, log)] == ["d", "b", "e", "a", "c", "f"]


def test_strict_queue_order(broker: Broker, tmp_path: Path) -> None:
    log = key()
    jobs = [
        client.enqueue("test_record", {"key": log, "tag": q}, queue=q)
        for q in ["low", "default", "high", "low", "high"]
    ]
    with running(["runworkers", "--processes", "1", "--concurrency", "1", "--queues", "high,default,low"], tmp_path):
        all_status(jobs, Status.COMPLETED)
    assert [e[5] for e in entries(broker, log)] == ["high", "high", "default", "low", "low"]


def test_weighted_queues_share_the_pool(broker: Broker, tmp_path: Path) -> None:
    log = key()
    jobs = [client.enqueue("test_record", {"key": log, "tag": q}, queue=q) for q in ["a", "b"] for _ in range(60)]
    with running(["runworkers", "--processes", "1", "--concurrency", "1", "--queues", "a:3,b:1"], tmp_path):
        all_status(jobs, Status.COMPLETED, 30)
    first_half = [e[5] for e in entries(broker, log)][:40]
    # Weighted, not strict: b gets a share before a is empty, a gets the larger share.
    assert 2 <= first_half.count("b") < first_half.count("a")


def test_retries_follow_the_backoff(broker: Broker, tmp_path: Path) -> None:
    log = key()
    retry = {"max_retries": 3, "backoff": "exponential", "initial_delay": "300ms", "max_delay": "10s", "jitter": False}
    job = client.enqueue("test_fail", {"key": log}, retry=retry)
    with running(["runworkers", "--processes", "1", "--concurrency", "2"], tmp_path):
        all_status([job], Status.FAILED, 20)
    starts = [float(e[4]) for e in entries(broker, log)]
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert len(starts) == 4
    for gap, expected in zip(gaps, [0.3, 0.6, 1.2], strict=True):
        assert expected - 0.02 <= gap <= expected + 0.5, gaps
    row = Job.objects.get(pk=job.pk)
    assert row.attempts == 4 and "RuntimeError: boom" in row.error and "Traceback" in row.traceback
    assert list(JobAttempt.objects.filter(job=job).values_list("outcome", flat=True)) == [Outcome.FAILED] * 4


def test_cooperative_job_past_its_timeout_fails_with_a_timeout(broker: Broker, tmp_path: Path) -> None:
    job = client.enqueue("test_sleep", {"seconds": 30}, timeout="500ms", retry={"max_retries": 0})
    with running(["runworkers", "--processes", "1"], tmp_path):
        all_status([job], Status.FAILED, 15)
    row = Job.objects.get(pk=job.pk)
    assert row.error.startswith("timeout")
    assert JobAttempt.objects.get(job=job).outcome == Outcome.TIMEOUT


def test_stuck_job_gets_its_process_replaced_and_neighbours_are_handed_back(broker: Broker, tmp_path: Path) -> None:
    log = key()
    stuck = client.enqueue(
        "test_sleep", {"seconds": 60, "hard": True, "key": log}, timeout="300ms", retry={"max_retries": 0}
    )
    neighbour = client.enqueue("test_sleep", {"seconds": 5, "key": log, "tag": "neighbour"})
    with running(
        ["runworkers", "--processes", "1", "--concurrency", "4"], tmp_path, JQS_WORKER_KILL_GRACE="500ms"
    ) as pool:
        wait_for(lambda: len(entries(broker, log)) >= 2, 15, message="both jobs started")
        all_status([stuck], Status.FAILED, 15)
        all_status([neighbour], Status.COMPLETED, 30)
        assert "replacing this worker process" in pool.log()
    assert "killed with its worker process" in Job.objects.get(pk=stuck.pk).error
    row = Job.objects.get(pk=neighbour.pk)
    # Handed back uncharged: the completed attempt is its first.
    assert row.attempts == 1 and JobAttempt.objects.filter(job=neighbour).count() == 1


def test_cancel_reaches_a_running_job_within_a_second(broker: Broker, tmp_path: Path) -> None:
    log = key()
    job = client.enqueue("test_cancellable", {"key": log})
    with running(["runworkers", "--processes", "1"], tmp_path):
        wait_for(lambda: entries(broker, log), 15, message="job started")
        asked = time.monotonic()
        client.cancel(job.pk)
        wait_for(lambda: any(e[3] == "cancelled" for e in entries(broker, log)), 5, message="ctx.cancelled seen")
        assert time.monotonic() - asked < 1.5
        all_status([job], Status.CANCELLED, 5)
    assert Job.objects.get(pk=job.pk).result is None


@pytest.mark.parametrize(
    ("signum", "to_group"),
    [(signal.SIGTERM, False), (signal.SIGINT, True), (signal.SIGHUP, True)],
    ids=["SIGTERM", "ctrl-c", "terminal-closed"],
)
def test_a_stop_signal_lets_a_short_job_finish_and_exits_zero(
    broker: Broker, tmp_path: Path, signum: int, to_group: bool
) -> None:
    """Ctrl-C and a closed terminal signal the whole process group, worker processes included."""
    log = key()
    job = client.enqueue("test_sleep", {"seconds": 1, "key": log})
    with running(["runworkers", "--processes", "1"], tmp_path) as pool:
        wait_for(lambda: entries(broker, log), 15, message="job started")
        if to_group:
            os.killpg(os.getpgid(pool.popen.pid), signum)
        else:
            pool.signal(signum)
        assert pool.wait(20) == 0
    row = Job.objects.get(pk=job.pk)
    assert (row.status, row.attempts) == (Status.COMPLETED, 1)
    assert broker.ids("default")["leases"] == set()


def test_sigterm_hands_back_a_job_longer_than_the_shutdown_timeout(broker: Broker, tmp_path: Path) -> None:
    log = key()
    job = client.enqueue("test_sleep", {"seconds": 60, "key": log})
    with running(["runworkers", "--processes", "1"], tmp_path, JQS_WORKER_SHUTDOWN_TIMEOUT="1s") as pool:
        wait_for(lambda: entries(broker, log), 15, message="job started")
        pool.signal(signal.SIGTERM)
        assert pool.wait(20) == 0
    row = Job.objects.get(pk=job.pk)
    assert (row.status, row.attempts) == (Status.PENDING, 0)
    assert broker.ids("default") == {"ready": {str(job.pk)}, "delayed": set(), "leases": set()}


def test_a_job_that_returns_as_the_shutdown_timeout_ends_is_recorded_not_run_again(
    broker: Broker, tmp_path: Path
) -> None:
    """The job ignores its context and returns 0.1 s after the 1 s grace, while the worker hands the rest
    back: it has done its work, so it is recorded completed, not handed back to run a second time."""
    log = key()
    job = client.enqueue("test_sleep", {"seconds": 1.1, "hard": True, "key": log})
    # A short poll: the idle fetcher notices the signal at once, so the grace ends about 1 s after it.
    env = {"JQS_WORKER_SHUTDOWN_TIMEOUT": "1s", "JQS_WORKER_POLL_INTERVAL": "20ms"}
    with running(["runworkers", "--processes", "1"], tmp_path, **env) as pool:
        wait_for(lambda: entries(broker, log), 15, 0.002, message="job started")
        pool.signal(signal.SIGTERM)
        assert pool.wait(20) == 0
    row = Job.objects.get(pk=job.pk)
    assert (row.status, row.attempts) == (Status.COMPLETED, 1)
    assert [e[3] for e in entries(broker, log)] == ["start", "end"]  # one run, to its end
    assert broker.ids("default") == {"ready": set(), "delayed": set(), "leases": set()}


def test_second_sigterm_hands_back_at_once(broker: Broker, tmp_path: Path) -> None:
    log = key()
    job = client.enqueue("test_sleep", {"seconds": 60, "key": log})
    with running(["runworkers", "--processes", "1"], tmp_path) as pool:
        wait_for(lambda: entries(broker, log), 15, message="job started")
        pool.signal(signal.SIGTERM)
        time.sleep(0.3)
        sent = time.monotonic()
        pool.signal(signal.SIGTERM)
        assert pool.wait(20) == 0
        assert time.monotonic() - sent < 5
    assert Job.objects.get(pk=job.pk).status == Status.PENDING


def test_sigkill_of_a_worker_process_loses_nothing(broker: Broker, tmp_path: Path) -> None:
    log = key()
    jobs = [client.enqueue("test_sleep", {"seconds": 1.5, "key": log}) for _ in range(4)]
    with running(["runworkers", "--processes", "1", "--concurrency", "4"], tmp_path) as pool:
        wait_for(lambda: len(entries(broker, log)) >= 4, 15, message="jobs started")
        [child] = pool.children()
        signal_sent = time.monotonic()
        import os

        os.kill(child, signal.SIGKILL)
        wait_for(lambda: [c for c in pool.children() if c != child], 5, message="replacement process")
        assert time.monotonic() - signal_sent < 3
        all_status(jobs, Status.COMPLETED, 30)
    for job in jobs:
        outcomes = list(JobAttempt.objects.filter(job=job).order_by("number").values_list("outcome", flat=True))
        assert outcomes == [Outcome.LOST, Outcome.COMPLETED]
        assert "worker lost (signal 9 (SIGKILL))" in JobAttempt.objects.get(job=job, number=1).error
    # Never two executions of one job at once: each restart began after the kill.
    by_job: dict[str, list[float]] = {}
    for entry in entries(broker, log):
        if entry[3] == "start":
            by_job.setdefault(entry[0], []).append(float(entry[4]))
    assert all(len(v) == 2 for v in by_job.values())


def test_the_concurrency_is_split_over_the_processes_and_a_replacement_takes_the_lost_slots(
    broker: Broker, tmp_path: Path
) -> None:
    def started() -> dict[int, int]:
        lines = json_records(pool.log())
        return {line["pid"]: line["slots"] for line in lines if line["message"] == "worker process started"}

    with running(["runworkers", "--processes", "2", "--concurrency", "5"], tmp_path) as pool:
        first = wait_for(lambda: started() if len(started()) == 2 else None, 20, message="two worker processes")
        assert first is not None and sorted(first.values()) == [2, 3]
        bigger = next(pid for pid, slots in first.items() if slots == 3)
        os.kill(bigger, signal.SIGKILL)
        now = wait_for(lambda: started() if len(started()) == 3 else None, 10, message="a replacement process")
        assert now is not None
        [(_, slots)] = [(pid, n) for pid, n in now.items() if pid not in first]
        assert slots == 3  # still 5 in all, not 2 + 2 or 3 + 3


def test_poison_job_ends_failed_without_crash_looping(broker: Broker, tmp_path: Path) -> None:
    log = key()
    poison = client.enqueue(
        "test_crash", {"key": log}, retry={"max_retries": 2, "initial_delay": "50ms", "jitter": False}
    )
    innocent = [client.enqueue("test_noop", {"n": i}) for i in range(20)]
    with running(["runworkers", "--processes", "2", "--concurrency", "4"], tmp_path) as pool:
        all_status([poison], Status.FAILED, 30)
        all_status(innocent, Status.COMPLETED, 30)
        wait_for_workers(broker, 2, proc=pool)
    row = Job.objects.get(pk=poison.pk)
    assert row.attempts == 3 and "worker lost (signal 9" in row.error
    assert len(entries(broker, log)) == 3


def test_async_jobs_run_on_the_event_loop(broker: Broker, tmp_path: Path) -> None:
    log = key()
    jobs = [client.enqueue("test_async_sleep", {"seconds": 1, "key": log}) for _ in range(200)]
    with running(["runworkers", "--processes", "1", "--concurrency", "200"], tmp_path):
        started = time.monotonic()
        all_status(jobs, Status.COMPLETED, 30)
        elapsed = time.monotonic() - started
    # 200 one-second jobs at once on one event loop, not one after another.
    assert elapsed < 10


def test_worker_processes_start_with_the_loaded_app_frozen_out_of_the_collector(broker: Broker, tmp_path: Path) -> None:
    """A full collection over Django's objects takes about 40 ms; it must not stall jobs. manage.py turns the
    collector off for the start-up: a worker turns it on again (else its cycles would never be freed)."""
    job = client.enqueue("test_gc_state")
    with running(["runworkers", "--processes", "1"], tmp_path):
        all_status([job], Status.COMPLETED, 15)
    job.refresh_from_db()
    assert job.result is not None and job.result["frozen"] > 20_000
    assert job.result["enabled"] == 1


def test_heartbeats_list_each_worker_and_vanish_on_exit(broker: Broker, tmp_path: Path) -> None:
    from jobs.broker.heartbeat import live_workers

    with running(["runworkers", "--processes", "2", "--concurrency", "6", "--queues", "a,b"], tmp_path) as pool:
        workers = wait_for_workers(broker, 2, proc=pool)
        assert {w["queues"][0] for w in workers} == {"a"} and all(w["concurrency"] == 3 for w in workers)
        assert {w["pid"] for w in workers} == set(pool.children())
        pool.signal(signal.SIGTERM)
        assert pool.wait(20) == 0
    assert live_workers(broker) == []


def test_bad_flags_are_one_line_errors(tmp_path: Path) -> None:
    with running(["runworkers", "--queues", "bad queue!"], tmp_path) as pool:
        assert pool.wait(30) == 2
        assert "is not a queue name" in pool.log() and "Traceback" not in pool.log()
    with running(["runworkers", "--processes", "-1"], tmp_path, "p2") as pool:
        assert pool.wait(30) == 2
        assert "expected a whole number from 1 to 256" in pool.log() and "Traceback" not in pool.log()


def test_a_stop_signal_during_start_up_stops_every_process_started(tmp_path: Path) -> None:
    """SIGTERM while the supervisor is still forking: it starts no more, and every child it did start stops."""
    with running(["runworkers", "--processes", "48", "--concurrency", "48"], tmp_path) as pool:
        wait_for(lambda: "worker process started" in pool.log(), 30, 0.005, "the first worker process started")
        pool.signal(signal.SIGTERM)
        assert pool.wait(60) == 0, pool.log()[-2000:]
        started = {r["pid"] for r in pool.records() if r["message"] == "worker process started"}
    assert started and not [pid for pid in started if _alive(pid)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_workers_ride_out_a_redis_restart(own_redis: Any, tmp_path: Path) -> None:
    from jobs.broker import get_broker

    log = key()
    before = [client.enqueue("test_noop", {"n": i}) for i in range(5)]
    with running(["runworkers", "--processes", "2", "--concurrency", "4"], tmp_path) as pool:
        all_status(before, Status.COMPLETED, 20)
        own_redis.restart()  # every key is gone; the workers' connections break
        restarted = time.monotonic()
        after = [client.enqueue("test_record", {"key": log}) for _ in range(5)]
        all_status(after, Status.COMPLETED, 20)
        assert time.monotonic() - restarted < 10
        assert pool.popen.poll() is None
        assert pool.log().count("Redis unavailable") <= 2  # logged once per process, not per retry
    assert len(entries(get_broker(), log)) == 5


def test_ten_thousand_jobs_through_two_processes_run_exactly_once(broker: Broker, tmp_path: Path) -> None:
    from jobs.validation import JobSpec

    counts = key()
    jobs: list[Job] = []
    for start in range(0, 10_000, 1000):
        jobs += client.enqueue_many([JobSpec("test_record", {"count": counts}) for _ in range(start, start + 1000)])
    with running(["runworkers", "--processes", "2"], tmp_path):
        wait_for(lambda: Job.objects.filter(status=Status.COMPLETED).count() == 10_000, 120, 0.2, "10,000 completed")
    raw = cast(dict[bytes, bytes], broker.client.hgetall(counts))
    executions = {k.decode(): int(v) for k, v in raw.items()}
    assert len(executions) == 10_000 and set(executions.values()) == {1}
    assert JobAttempt.objects.count() == 10_000
    assert broker.ids("default") == {"ready": set(), "delayed": set(), "leases": set()}


def test_supervisor_killed_children_drain_and_exit(broker: Broker, tmp_path: Path) -> None:
    import os

    from jobs.broker.heartbeat import live_workers

    log = key()
    job = client.enqueue("test_sleep", {"seconds": 1, "key": log})
    with running(["runworkers", "--processes", "2"], tmp_path) as pool:
        wait_for(lambda: entries(broker, log), 15, message="job started")
        children = pool.children()
        os.kill(pool.pid, signal.SIGKILL)
        killed = time.monotonic()

        def gone() -> bool:
            return not any(
                os.path.exists(f"/proc/{pid}") and open(f"/proc/{pid}/stat").read().split()[2] != "Z"
                for pid in children
            )

        wait_for(gone, 15, message="orphaned worker processes exit")
        assert time.monotonic() - killed < 5
    # The running job finished (drained), and no orphan keeps a heartbeat.
    assert Job.objects.get(pk=job.pk).status == Status.COMPLETED
    assert live_workers(broker) == []


def test_garbage_and_deleted_ids_are_skipped(broker: Broker, tmp_path: Path) -> None:
    from jobs.broker import PushItem

    deleted = client.enqueue("test_noop")
    Job.objects.filter(pk=deleted.pk).delete()  # a row deleted under a live id
    broker.push([PushItem("default", "not-a-uuid"), PushItem("default", str(uuid.uuid4()))])
    good = client.enqueue("test_noop")
    with running(["runworkers", "--processes", "1"], tmp_path) as pool:
        all_status([good], Status.COMPLETED, 20)
        wait_for(
            lambda: broker.ids("default") == {"ready": set(), "delayed": set(), "leases": set()},
            10,
            message="bad ids dropped",
        )
        assert pool.popen.poll() is None and "Traceback" not in pool.log()


def test_max_jobs_recycles_the_process_without_losing_jobs(broker: Broker, tmp_path: Path) -> None:
    jobs = [client.enqueue("test_noop", {"n": i}) for i in range(40)]
    with running(["runworkers", "--processes", "1", "--concurrency", "2"], tmp_path, JQS_WORKER_MAX_JOBS="10") as pool:
        all_status(jobs, Status.COMPLETED, 30)
        assert pool.log().count("recycling after max_jobs") >= 3
    attempts = JobAttempt.objects.filter(job__in=jobs)
    assert attempts.count() == 40
    per_process = Counter(attempts.values_list("worker", flat=True))
    assert sorted(per_process.values()) == [10, 10, 10, 10], per_process


def test_a_frozen_worker_loses_its_job_and_its_late_finish_is_rejected(broker: Broker, tmp_path: Path) -> None:
    """F08: SIGSTOP a worker past its lease; another runs the job; the stale finish changes nothing."""
    import os

    log = key()
    job = client.enqueue(
        "test_sleep", {"seconds": 2, "key": log}, retry={"max_retries": 3, "initial_delay": "10ms", "jitter": False}
    )
    env = {"JQS_WORKER_LEASE_TTL": "1s", "JQS_SCHEDULER_RECLAIM_INTERVAL": "200ms", "JQS_SCHEDULER_POLL_INTERVAL": "1s"}
    with (
        running(["runworkers", "--processes", "2"], tmp_path, "workers", **env) as pool,
        running(["runscheduler"], tmp_path, "scheduler", **env),
    ):
        wait_for(lambda: entries(broker, log), 15, message="job started")
        frozen = int(entries(broker, log)[0][2])
        os.kill(frozen, signal.SIGSTOP)
        try:
            wait_for(
                lambda: any(e[2] != str(frozen) and e[3] == "end" for e in entries(broker, log)),
                30,
                message="another worker ran it",
            )
        finally:
            os.kill(frozen, signal.SIGCONT)
        all_status([job], Status.COMPLETED, 20)
        wait_for(
            lambda: (
                any(e[2] == str(frozen) and e[3] == "end" for e in entries(broker, log)) or "lease lost" in pool.log()
            ),
            10,
            message="the frozen worker resumed",
        )
    row = Job.objects.get(pk=job.pk)
    outcomes = list(JobAttempt.objects.filter(job=job).order_by("number").values_list("outcome", flat=True))
    assert row.status == Status.COMPLETED and outcomes == [Outcome.LOST, Outcome.COMPLETED]


def test_star_takes_every_queue(broker: Broker, tmp_path: Path) -> None:
    from workers.selection import parse_queues

    assert parse_queues("*").every_queue
    jobs = [client.enqueue("test_noop", queue=q) for q in ["emails", "images", "default", "x.y:z"]]
    with running(["runworkers", "--processes", "1", "--queues", "*"], tmp_path):
        all_status(jobs, Status.COMPLETED, 20)
        late = client.enqueue("test_noop", queue="made-later")
        all_status([late], Status.COMPLETED, 20)
