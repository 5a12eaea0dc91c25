"""Failover as a user sees it: the time from a Redis master's death to the first job completed on the new master,
through Sentinel and on a Redis Cluster (issue 16's performance section; run by ``bench/cluster_bench.py``).

Each failover gets Redis of its own (never the shared one): a master, a replica and three sentinels
(``tests/redis_sentinel.py``, ``down-after-milliseconds 1000``), or three masters with a replica each
(``tests/redis_cluster.py``, ``cluster-node-timeout 2000``). ``runworkers --processes 2`` and ``runscheduler``
run with ZipLine's defaults while this process submits no-op jobs steadily (20 every 10 ms) over the queues;
once 200 have completed the master (on a cluster: the master of the first queue) is SIGKILLed. The outage is
from the kill to the earliest ``completed_at`` of a job claimed after it (``started_at`` later than the kill;
on a cluster, a job of the dead master's queues): the promotion, the clients finding the new master, and a
claim, run and finish.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "manage.py", *command], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def _wait(predicate: Callable[[], Any], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"failover bench: {what} not within {seconds:.0f} s")
        time.sleep(0.02)


@contextmanager
def _load(env: dict[str, str], queues: list[str], log: Path) -> Iterator[None]:
    """A pool, a scheduler and a producer of no-op jobs on the Redis ``env`` names, until the block ends."""
    from django.db import connection

    from jobs import JobSpec, enqueue_many
    from jobs.broker import get_broker
    from jobs.broker.heartbeat import live_workers

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE jobs_job CASCADE")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.zipline_settings", **env}
    queue_flag = ["--queues", ",".join(queues)]
    processes = [_start(["runworkers", "--processes", "2", *queue_flag], env, log), _start(["runscheduler"], env, log)]
    stop = threading.Event()

    def produce() -> None:
        try:
            n = 0
            while not stop.is_set():
                enqueue_many([JobSpec("bench_noop", queue=queues[(n + i) % len(queues)]) for i in range(20)])
                n += 20
                time.sleep(0.01)
        finally:
            connection.close()

    producer = threading.Thread(target=produce, daemon=True)
    try:
        with _dispatch_warnings_off():
            _wait(lambda: len(live_workers(get_broker())) >= 2, 60, "two live worker processes")
            producer.start()
            yield
    finally:
        stop.set()
        if producer.is_alive():
            producer.join(60)
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(60)


def _dispatch_warnings_off() -> AbstractContextManager[None]:
    """While the master is down this process's submits defer their dispatch, each with a warning: not the figures."""
    from zipline_site.logs import quieted

    return quieted("zipline.dispatch", logging.ERROR)


def _outage(killed: datetime, queues: list[str]) -> float:
    """Seconds from ``killed`` to the first job of ``queues`` claimed after it completing (waits up to 60 s)."""
    from jobs.models import Job, Status

    after = Job.objects.filter(queue__in=queues, status=Status.COMPLETED, started_at__gt=killed)
    _wait(after.exists, 60, "a job claimed after the master's death completed")
    first = after.order_by("completed_at").values_list("completed_at", flat=True)[0]
    assert first is not None
    return (first - killed).total_seconds()


def _until_running(queues: list[str]) -> None:
    from jobs.models import Job, Status

    done = Job.objects.filter(queue__in=queues, status=Status.COMPLETED)
    _wait(lambda: done.count() >= 200, 60, "200 jobs completed before the kill")


def sentinel_failover(directory: Path, log: Path) -> float:
    """One Sentinel failover under load: seconds from the master's SIGKILL to the first job completed after."""
    from jobs.broker import reset_broker
    from tests.helpers import override_zipline
    from tests.redis_sentinel import MASTER_NAME, Sentinels

    group = Sentinels(directory)
    group.start()
    env = {"JQS_REDIS_SENTINELS": group.addresses, "JQS_REDIS_SENTINEL_MASTER": MASTER_NAME}
    queues = ["default"]
    try:
        with override_zipline(redis_sentinels=group.addresses, redis_sentinel_master=MASTER_NAME):
            reset_broker()
            with _load(env, queues, log):
                _until_running(queues)
                killed = datetime.now(tz=UTC)
                group.master.stop()  # SIGKILL
                return _outage(killed, queues)
    finally:
        reset_broker()
        group.stop()


def cluster_failover(directory: Path, log: Path, queues: list[str]) -> tuple[float, float]:
    """One Cluster failover under load: seconds from the SIGKILL of the master of ``queues[0]`` to its replica's
    promotion, and to the first job of that master's queues completed after the kill."""
    from django.test import override_settings

    from jobs.broker import get_broker, reset_broker
    from tests.redis_cluster import Cluster

    group = Cluster(directory)
    group.start()
    try:
        with override_settings(REDIS_URL=group.cluster_url):
            reset_broker()
            broker = get_broker()
            home = {q: broker.client.get_node_from_key(broker.keys(q).ready).port for q in queues}  # type: ignore[attr-defined]
            victim = next(node for node in group.nodes if node.port == home[queues[0]])
            [replica] = group.replicas_of(victim)
            mine = [q for q in queues if home[q] == victim.port]
            with _load({"JQS_REDIS_URL": group.cluster_url}, queues, log):
                _until_running(mine)
                killed, began = datetime.now(tz=UTC), time.monotonic()
                victim.stop()  # SIGKILL
                group.wait_failed_over(victim, replica)
                promoted = time.monotonic() - began
                return promoted, _outage(killed, mine)
    finally:
        reset_broker()
        group.stop()
