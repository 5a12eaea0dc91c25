"""F14: a worker cut off from Redis, the database still reachable, for longer than its lease.

Worker A reaches Redis through a :class:`~tests.tcp_proxy.TcpProxy`; the scheduler and worker B reach it
directly. The proxy blackholes A's traffic (nothing forwarded, nothing closed: a partition), A's lease
expires, the scheduler reclaims it and B runs the job again. A's own run of the job ends while A is
still cut off, and its last Redis write is held by the partition, so A's finish reaches the database
only after the heal, after B's: it must be rejected (fenced on the attempt and the worker), and A must
then carry on claiming jobs as if nothing happened.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

from jobs import client
from jobs.broker import Broker
from jobs.models import Job, JobAttempt, Outcome, Status
from scheduler.reclaim import LOST_REASON
from tests.helpers import wait_for
from tests.procs import running, wait_for_workers
from tests.tcp_proxy import TcpProxy

LEASE = {"JQS_WORKER_LEASE_TTL": "2s", "JQS_SCHEDULER_RECLAIM_INTERVAL": "200ms", "JQS_SCHEDULER_POLL_INTERVAL": "1s"}
# A's run of the job ends during the partition: after the cut (made as soon as it starts) and before
# B's run of it ends (B starts once A's lease has expired, and runs just as long).
JOB_SECONDS = 3.0
RETRY = {"max_retries": 3, "initial_delay": "10ms", "jitter": False}


def proxy_to_redis() -> TcpProxy:
    """A proxy in front of the Redis under test."""
    target = urlsplit(settings.REDIS_URL)
    return TcpProxy(target.hostname or "127.0.0.1", target.port or 6379)


def through(proxy: TcpProxy) -> str:
    """The Redis URL under test (same database, same credentials), pointed at ``proxy``."""
    parts = urlsplit(settings.REDIS_URL)
    auth = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{auth + '@' if auth else ''}127.0.0.1:{proxy.port}"))


def ledger(broker: Broker, key: str) -> list[dict[str, str]]:
    """The entries test processors left under ``key``: job id, attempt, pid, event, time, tag."""
    fields = ("job_id", "attempt", "pid", "event", "time", "tag")
    return [
        dict(zip(fields, raw.decode().split("|"), strict=True))
        for raw in cast(list[bytes], broker.client.lrange(key, 0, -1))
    ]


def row(job_id: Any) -> dict[str, Any]:
    """The job's row, every column."""
    return dict(Job.objects.filter(pk=job_id).values().get())


def attempts(job_id: Any) -> list[tuple[int, str, str]]:
    """The job's attempt rows: number, outcome, worker."""
    return list(JobAttempt.objects.filter(job_id=job_id).order_by("number").values_list("number", "outcome", "worker"))


def job_gone_from_redis(broker: Broker, job_id: str) -> bool:
    """No ready, delayed or leased entry and no lease token left for the job."""
    ids = broker.ids("default")
    present = any(job_id in members for members in ids.values())
    return not present and not broker.client.hexists(broker.keys("default").owners, job_id)


def time_iso(seconds: float) -> str:
    """A wall-clock time as the JSON logs write it (UTC, ISO 8601, milliseconds)."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="milliseconds")


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_worker_partitioned_from_redis_past_its_lease_is_fenced_and_resumes_after_the_heal(
    broker: Broker, tmp_path: Path
) -> None:
    """F14, as F08 but with the network: another worker runs the job, the cut-off worker's late finish
    changes nothing, and after the heal it drops the stale job and claims new work."""
    from jobs.broker.heartbeat import live_workers

    key = f"{broker.prefix}:ledger"  # under the test's prefix: deleted after it
    with proxy_to_redis() as proxy:
        with (
            running(["runscheduler"], tmp_path, "scheduler", **LEASE) as scheduler,
            running(
                ["runworkers", "--processes", "1"], tmp_path, "worker-a", JQS_REDIS_URL=through(proxy), **LEASE
            ) as a,
        ):
            wait_for(broker.epoch_present, 20, message="the scheduler is up")
            wait_for_workers(broker, 1, proc=a)
            [a_pid] = a.children()
            job = client.enqueue("test_sleep", {"seconds": JOB_SECONDS, "key": key}, retry=RETRY)
            wait_for(lambda: ledger(broker, key), 15, message="A started the job")
            a_token = row(job.pk)["worker"]
            assert [(e["attempt"], e["pid"], e["event"]) for e in ledger(broker, key)] == [("1", str(a_pid), "start")]

            proxy.cut("blackhole")
            cut_at = time.time()
            with running(["runworkers", "--processes", "1"], tmp_path, "worker-b", **LEASE) as b:
                # A's lease expires (nothing renews it through the partition); the scheduler reclaims
                # it and B, which reaches Redis directly, runs the job again and finishes it.
                wait_for(lambda: row(job.pk)["status"] == Status.COMPLETED, 30, 0.05, "B completed the job")
                wait_for(lambda: job_gone_from_redis(broker, str(job.pk)), 10, message="B settled its lease")
                [b_pid] = b.children()
                b.signal(signal.SIGTERM)
                assert b.wait(20) == 0
            finished_by_b = row(job.pk)
            b_token = finished_by_b["worker"]
            assert b_token and b_token != a_token
            assert (finished_by_b["attempts"], finished_by_b["result"]) == (2, "slept")
            assert attempts(job.pk) == [(1, Outcome.LOST, a_token), (2, Outcome.COMPLETED, b_token)]
            # A's run of the job is over (its sleep ended before B's began) but its last write to Redis,
            # the ledger's "end", is held by the partition: A has not finished it yet.
            events = [(e["attempt"], e["pid"], e["event"]) for e in ledger(broker, key)]
            assert events == [("1", str(a_pid), "start"), ("2", str(b_pid), "start"), ("2", str(b_pid), "end")]
            assert proxy.held > 0, "A sent nothing to Redis while it was cut off"
            # Cut off for longer than A's Redis socket timeout too: its commands failed, not just hung.
            wait_for(lambda: proxy.hung_up > 0, 15, 0.05, "A giving up on a Redis connection")
            assert a.children() == [a_pid]

            proxy.heal()
            healed_at = time.time()
            wait_for(
                lambda: any(e["pid"] == str(a_pid) and e["event"] == "end" for e in ledger(broker, key)),
                10,
                message="A's held write delivered",
            )
            stale = wait_for(
                lambda: [r for r in a.records() if r.get("job_id") == str(job.pk) and r.get("status") == "stale"],
                15,
                message="A's late finish rejected as stale",
            )
            # A tried to record its attempt 1 (after B's attempt 2 was already final) and changed nothing.
            assert [r["attempt"] for r in stale] == [1]
            assert row(job.pk) == finished_by_b
            assert attempts(job.pk) == [(1, Outcome.LOST, a_token), (2, Outcome.COMPLETED, b_token)]
            assert job_gone_from_redis(broker, str(job.pk))

            # A dropped the stale job (nothing busy in its heartbeat, which is fresh again) and claims
            # new work: B is gone, so only A can run this one.
            wait_for(
                lambda: [
                    w
                    for w in live_workers(broker)
                    if w["id"] == a_token and w["heartbeat_at"] > healed_at and w["busy"] == 0
                ],
                15,
                message="A's heartbeat back, with no job held",
            )
            after = client.enqueue("test_record", {"key": key, "tag": "after-heal"})
            wait_for(lambda: row(after.pk)["status"] == Status.COMPLETED, 15, 0.05, "A ran a job after the heal")
            assert attempts(after.pk) == [(1, Outcome.COMPLETED, a_token)]
            assert [e["pid"] for e in ledger(broker, key) if e["job_id"] == str(after.pk)] == [str(a_pid)]
            assert a.children() == [a_pid], "A's worker process was replaced instead of riding out the partition"
            assert a.popen.poll() is None

        reclaimed = [r for r in scheduler.records() if r.get("message") == "reclaimed expired lease"]
        assert [(r["job_id"], r["worker"], r["attempt"]) for r in reclaimed] == [(str(job.pk), a_token, 1)]
        assert next(r["time"] for r in reclaimed) > time_iso(cut_at)

    assert JobAttempt.objects.get(job=job, number=1).error == LOST_REASON
    assert broker.ids("default") == {"ready": set(), "delayed": set(), "leases": set()}
    assert broker.client.hlen(broker.keys("default").owners) == 0


# -- the proxy itself ---------------------------------------------------------------------------------


def test_a_blackholed_proxy_holds_commands_until_the_heal_then_delivers_them(broker: Broker) -> None:
    key = f"{broker.prefix}:proxy-{uuid.uuid4().hex[:6]}"
    with proxy_to_redis() as proxy:
        cut_off = redis.Redis.from_url(through(proxy))  # no socket timeout: it waits as long as the partition
        assert cut_off.ping()
        proxy.cut("blackhole")
        done: dict[str, Any] = {}
        thread = threading.Thread(target=lambda: done.setdefault("value", cut_off.incr(key)))
        thread.start()
        thread.join(0.5)
        assert thread.is_alive() and broker.client.get(key) is None  # hanging, and nothing reached Redis
        assert proxy.held >= 1
        impatient = redis.Redis.from_url(through(proxy), socket_timeout=0.2, retry=Retry(NoBackoff(), 0))
        with pytest.raises(redis.TimeoutError):
            impatient.ping()
        impatient.close()
        wait_for(lambda: proxy.hung_up == 1, 5, message="the timed-out client's hang-up seen")
        proxy.heal()
        thread.join(5)
        assert done == {"value": 1} and broker.client.get(key) == b"1"
        assert cut_off.incr(key) == 2  # the same connection carries on
        cut_off.close()


def test_a_refusing_proxy_fails_commands_at_once(broker: Broker) -> None:
    with proxy_to_redis() as proxy:
        refused = redis.Redis.from_url(through(proxy), socket_timeout=5)
        assert refused.ping()
        proxy.cut("refuse")
        started = time.monotonic()
        with pytest.raises(redis.ConnectionError):
            refused.ping()
        assert time.monotonic() - started < 3
        proxy.heal()
        assert refused.ping()
        refused.close()


@pytest.mark.django_db(transaction=True)
def test_a_cancel_reaches_a_running_job_while_its_worker_is_cut_off_from_redis(broker: Broker, tmp_path: Path) -> None:
    """The keeper does not wait out a long Redis socket timeout: cancellations (read from the
    database) still reach a running job within about a second while Redis is unreachable."""
    with (
        proxy_to_redis() as proxy,
        running(["runworkers", "--processes", "1"], tmp_path, "worker-a", JQS_REDIS_URL=through(proxy)) as a,
    ):
        wait_for_workers(broker, 1, proc=a)
        job = client.enqueue("test_cancellable")  # no ledger key: it writes nothing to Redis
        wait_for(lambda: row(job.pk)["status"] == Status.RUNNING, 15, 0.02, "A started the job")
        proxy.cut("blackhole")
        # The keeper's next heartbeat goes into the partition (and would hang there without a short timeout).
        wait_for(lambda: proxy.held > 0, 10, 0.02, "the keeper writing to Redis through the partition")
        cancelled_at = time.time()
        client.cancel(str(job.pk))
        wait_for(lambda: row(job.pk)["status"] == Status.CANCELLED, 10, 0.02, "the job ended cancelled")
        [attempt] = JobAttempt.objects.filter(job=job)
        assert attempt.outcome == Outcome.CANCELLED
        assert attempt.finished_at.timestamp() - cancelled_at < 2.5
        proxy.heal()
