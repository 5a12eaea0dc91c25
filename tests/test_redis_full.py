"""F13: Redis full (``maxmemory`` reached with ``noeviction``) under a running pool.

Writes to Redis fail with OOM while it is full: a submit still commits its row (the dispatch is
deferred and logged), workers keep their jobs and retry, and once memory is freed the scheduler's
reconciler pushes what was never dispatched. Every job completes exactly once.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, cast

import pytest
import redis

from jobs import client
from jobs.broker import get_broker
from jobs.models import Job, JobAttempt, Outcome, Status
from tests.helpers import wait_for
from tests.procs import running, wait_for_workers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

JUNK_DB = 1  # the filler lives in a database of its own; maxmemory counts every database


def make_full(server: Any) -> redis.Redis:
    """Put Redis over its ``maxmemory`` by a megabyte of filler: every write is refused with OOM
    (deletions still run, but what a job's ack frees is far from a megabyte). Returns the filler's
    client, whose ``flushdb`` gives the room back."""
    junk = redis.Redis(port=server.port, db=JUNK_DB)
    for start in range(0, 2048, 64):  # small writes: a big one leaves a query buffer Redis frees later
        pipe = junk.pipeline(transaction=False)
        for i in range(start, start + 64):
            pipe.set(f"filler:{i}", b"x" * 1024)
        pipe.execute()
    junk.config_set("maxmemory-policy", "noeviction")
    memory = cast(dict[str, Any], junk.info("memory"))
    junk.config_set("maxmemory", str(int(memory["used_memory"]) - 1024 * 1024))
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        junk.set("probe", b"x")
    return junk


def test_a_full_redis_defers_dispatch_and_loses_nothing(own_redis: Any, tmp_path: Path) -> None:
    first = [client.enqueue("test_sleep", {"seconds": 0.5}) for _ in range(80)]
    with (
        running(["runworkers", "--processes", "2", "--concurrency", "8"], tmp_path) as pool,
        running(
            ["runscheduler"],
            tmp_path,
            "scheduler",
            JQS_SCHEDULER_POLL_INTERVAL="200ms",
            JQS_SCHEDULER_RECONCILE_GRACE="1s",
        ),  # fmt: skip
    ):
        broker = get_broker()
        wait_for_workers(broker, 2, proc=pool)
        wait_for(lambda: Job.objects.filter(status=Status.COMPLETED).exists(), 20, message="the pool at work")
        children = set(pool.children())

        junk = make_full(own_redis)  # with jobs of the first batch still running and queued
        second = [client.enqueue("test_sleep", {"seconds": 0.01}) for _ in range(20)]
        assert Job.objects.filter(pk__in=[j.pk for j in second]).count() == 20  # committed all the same
        time.sleep(2)  # two seconds of a full Redis: refused claims, settles, heartbeats and pushes
        in_redis = set().union(*broker.ids("default").values())
        assert not in_redis & {str(j.pk) for j in second}, "a push went through although Redis was full"
        assert "used memory > 'maxmemory'" in pool.log()  # the workers met the refusals

        junk.flushdb()
        ids = [j.pk for j in first + second]
        wait_for(
            lambda: Job.objects.filter(pk__in=ids, status=Status.COMPLETED).count() == len(ids),
            60, 0.2, "every job completed after Redis had room again",
        )  # fmt: skip
        assert set(pool.children()) == children, "a worker process crashed on a full Redis"
        assert pool.popen.poll() is None
    completed = JobAttempt.objects.filter(job_id__in=ids, outcome=Outcome.COMPLETED).count()
    assert completed == len(ids)
