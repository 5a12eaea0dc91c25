"""Redis Cluster through the settings: the client chosen, made lazily, refused in one line when the settings and the
Redis disagree, the cross-queue operations, the Django cache, and a master SIGKILLed under load losing nothing.

Each test uses a cluster of the module's own (three masters with a replica each, tests/redis_cluster.py) or,
for the failover, of its own; the shared Redis keeps only the jobs' execution counts, which must outlive a master.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
import redis
from django.test import override_settings

from jobs import client
from jobs.broker import BrokerUnavailable, PushItem, get_broker, reset_broker
from jobs.broker.connection import describe_redis
from jobs.models import Job, JobAttempt, Outcome, Status
from jobs.validation import JobSpec
from tests.helpers import override_zipline, wait_for
from tests.procs import manage, running, wait_for_workers
from tests.redis_cluster import Cluster
from tests.redis_server import RedisServer
from tests.settings import SHARED_REDIS_URL

pytestmark = pytest.mark.slow
QUEUES = ["default", "high", "low", "emails", "reports"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    group = Cluster(Path(tmp_path_factory.mktemp("cluster")))
    group.start()
    try:
        yield group
    finally:
        group.stop()


def _forget_keys(prefix: str) -> None:
    broker = get_broker()
    keys = list(broker.client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        broker.client.delete(*keys)


@pytest.fixture
def on_cluster(cluster: Cluster) -> Iterator[Cluster]:
    """This process's broker on ``cluster`` (through its ``redis+cluster://`` URL) under a prefix of its own."""
    prefix = f"zc-{uuid.uuid4().hex[:8]}"
    with override_settings(REDIS_URL=cluster.cluster_url), override_zipline(redis_key_prefix=prefix):
        reset_broker()
        try:
            yield cluster
        finally:
            _forget_keys(prefix)
            reset_broker()


def test_a_cluster_url_or_the_flag_chooses_the_cluster_client(cluster: Cluster) -> None:
    from tests.procs import free_port

    first_down = cluster.cluster_url.replace("://", f"://127.0.0.1:{free_port()},")  # the others still answer
    for url, flag in ((cluster.cluster_url, False), (cluster.url, True), (first_down, False)):
        with override_settings(REDIS_URL=url), override_zipline(redis_cluster=flag, redis_key_prefix="zc-choose"):
            reset_broker()
            broker = get_broker()
            assert broker.cluster, url
            assert describe_redis().startswith("the Redis Cluster at 127.0.0.1:"), describe_redis()
            assert broker.push([PushItem(q, f"{q}-1", 0) for q in QUEUES]) == len(QUEUES)
            for queue in QUEUES:
                assert broker.claim(queue, "w", 5, 30_000).ids == [f"{queue}-1"]
            _forget_keys("zc-choose")
    reset_broker()


def test_the_client_is_made_at_its_first_call_and_recovers_when_the_cluster_comes(tmp_path: Path) -> None:
    """Workers and the scheduler build their broker before Redis answers: its calls fail with
    BrokerUnavailable, then succeed on the same broker once the cluster is up."""
    late = Cluster(tmp_path, masters=3, replicas=0)
    with override_settings(REDIS_URL=late.cluster_url), override_zipline(redis_key_prefix="zc-late"):
        reset_broker()
        try:
            broker = get_broker()  # no node answers yet, and nothing is raised here
            with pytest.raises(BrokerUnavailable, match="the Redis Cluster at 127.0.0.1:"):
                broker.push([PushItem("default", "early", 0)])
            late.start()
            assert broker.push([PushItem("default", "late", 0)]) == 1
            assert broker.ids("default")["ready"] == {"late"}
        finally:
            late.stop()
            reset_broker()


@pytest.mark.django_db(transaction=True)
def test_a_cluster_url_on_a_single_redis_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    single = RedisServer(tmp_path)
    single.start()
    try:
        cases = [
            ({"JQS_REDIS_URL": f"redis+cluster://127.0.0.1:{single.port}"}, "JQS_REDIS_URL: "),
            ({"JQS_REDIS_URL": single.url, "JQS_REDIS_CLUSTER": "true"}, "JQS_REDIS_CLUSTER: "),
        ]
        for env, setting in cases:
            for command in ("runworkers", "runscheduler"):
                done = manage(command, **env)
                assert done.returncode == 2, (command, env, done.stderr)
                lines = done.stderr.strip().splitlines()
                assert len(lines) == 1, done.stderr
                assert setting in lines[0] and f"127.0.0.1:{single.port} is not a node of a Redis Cluster" in lines[0]
    finally:
        single.stop()


@pytest.mark.django_db(transaction=True)
def test_a_single_node_url_on_a_cluster_node_is_one_line_naming_the_setting(cluster: Cluster) -> None:
    for command in ("runworkers", "runscheduler"):
        done = manage(command, JQS_REDIS_URL=cluster.url)
        assert done.returncode == 2, (command, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert f"JQS_REDIS_URL: the Redis at 127.0.0.1:{cluster.nodes[0].port} is a node of a Redis Cluster" in lines[0]
        assert "redis+cluster://" in lines[0]


@pytest.mark.django_db(transaction=True)
def test_the_django_cache_works_on_the_cluster(cluster: Cluster) -> None:
    """The shared job counts of the API (jobs.queues) live in the Django cache: on a cluster its keys go to
    the nodes of their slots (a plain client would be sent MOVED)."""
    keys = [f"probe-{n}" for n in range(20)]  # twenty keys: several slots, several masters
    script = (
        "from django.core.cache import cache; "
        f"[cache.set(k, len(k)) for k in {keys!r}]; "
        f"print(sum(cache.get(k) for k in {keys!r}))"
    )
    done = manage("shell", "-c", script, JQS_REDIS_URL=cluster.cluster_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(sum(len(k) for k in keys))


def _runs(counts: str) -> dict[str, int]:
    shared = redis.Redis.from_url(SHARED_REDIS_URL)
    try:
        return {key.decode(): int(n) for key, n in cast(dict[bytes, bytes], shared.hgetall(counts)).items()}
    finally:
        shared.close()


@pytest.mark.django_db(transaction=True)
def test_a_master_killed_under_load_fails_over_and_loses_no_job(tmp_path: Path) -> None:
    """SIGKILL the master of a queue's slot while a pool runs and a producer submits to five queues: its replica
    takes over, the pool and the scheduler carry on without a restart, and every job completes, once unless it was
    in flight at the failover (then again after its lease, its first attempt recorded as lost)."""
    group = Cluster(tmp_path / "cluster")
    group.start()
    prefix = f"zc-{uuid.uuid4().hex[:8]}"
    try:
        with override_settings(REDIS_URL=group.cluster_url), override_zipline(redis_key_prefix=prefix):
            reset_broker()
            outage, promoted, produced, lost = _fail_over_under_load(group, tmp_path, f"{prefix}:runs")
    finally:
        group.stop()
        reset_broker()
    print(
        f"\ncluster failover: replica promoted {promoted:.2f} s and the first job of the dead master's queue done "
        f"{outage:.2f} s after its death; {produced} jobs, {lost} lost in flight and run again"
    )


def _fail_over_under_load(group: Cluster, tmp_path: Path, counts: str) -> tuple[float, float, int, int]:
    from django.utils import timezone

    env = {
        "JQS_WORKER_LEASE_TTL": "4s",
        "JQS_SCHEDULER_POLL_INTERVAL": "1s",
        "JQS_SCHEDULER_RECLAIM_INTERVAL": "0.5s",
        "JQS_SCHEDULER_RECONCILE_GRACE": "2s",
        "ZIPLINE_TEST_LEDGER_REDIS_URL": SHARED_REDIS_URL,  # the counts outlive the master
    }
    broker = get_broker()
    victim_port = broker.client.get_node_from_key(broker.keys("default").ready).port  # type: ignore[attr-defined]
    homes = {broker.client.get_node_from_key(broker.keys(q).ready).port for q in QUEUES}  # type: ignore[attr-defined]
    assert len(homes) == 3, "the five queues are on every master"
    victim = next(node for node in group.nodes if node.port == victim_port)
    [replica] = group.replicas_of(victim)
    produced: list[str] = []
    stop = threading.Event()

    def produce() -> None:
        from django.db import connection

        try:
            while not stop.is_set() and len(produced) < 8000:
                specs = [JobSpec("test_record", {"count": counts}, queue=QUEUES[n % 5]) for n in range(20)]
                produced.extend(str(job.pk) for job in client.enqueue_many(specs))
                time.sleep(0.01)
        finally:
            connection.close()  # this thread's own: the test database is dropped after the test

    redis.Redis.from_url(SHARED_REDIS_URL).delete(counts)
    queues = ",".join(QUEUES)
    with (
        running(["runworkers", "--processes", "2", "--queues", queues], tmp_path, "pool", **env) as pool,
        running(["runscheduler"], tmp_path, "scheduler", **env) as scheduler,
    ):
        wait_for_workers(broker, 2, 60, pool)
        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        wait_for(lambda: Job.objects.filter(status=Status.COMPLETED).count() >= 300, 60, 0.05, "jobs running")
        killed_at, killed_wall, before = time.monotonic(), timezone.now(), len(produced)
        victim.stop()  # SIGKILL
        group.wait_failed_over(victim, replica)
        promoted = time.monotonic() - killed_at
        after = Job.objects.filter(queue="default", status=Status.COMPLETED, started_at__gt=killed_wall)
        wait_for(after.exists, 60, 0.02, "a job of the dead master's queue claimed and completed after its death")
        outage = time.monotonic() - killed_at
        wait_for(lambda: len(produced) >= before + 600, 60, 0.05, "the producer went on through the failover")
        stop.set()
        producer.join(30)
        done = Job.objects.filter(pk__in=produced, status=Status.COMPLETED)
        wait_for(lambda: done.count() == len(produced), 90, 0.2, "every job completed")
        pool.signal(signal.SIGTERM)
        scheduler.signal(signal.SIGTERM)
        assert pool.wait(30) == 0 and scheduler.wait(30) == 0
    runs = _runs(counts)
    lost = {str(pk) for pk in JobAttempt.objects.filter(outcome=Outcome.LOST).values_list("job_id", flat=True)}
    assert set(runs) == set(produced)
    twice = {job_id for job_id, n in runs.items() if n > 1}
    assert twice <= lost, f"run twice without a lost attempt: {sorted(twice - lost)[:5]}"
    assert JobAttempt.objects.filter(job_id__in=produced, outcome=Outcome.COMPLETED).count() == len(produced)
    return outage, promoted, len(produced), len(lost)


@pytest.mark.django_db(transaction=True)
def test_a_cluster_out_of_reach_is_unavailable_in_one_line() -> None:
    from tests.procs import free_port

    done = manage("runworkers", JQS_REDIS_URL=f"redis+cluster://127.0.0.1:{free_port()}")
    assert done.returncode == 3, done.stderr
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "cannot reach the Redis Cluster at 127.0.0.1:" in done.stderr


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"JQS_REDIS_URL": "redis+cluster://10.0.0.5:7000/2"}, "a Redis Cluster has only database 0"),
        ({"JQS_REDIS_URL": "redis+cluster://10.0.0.5"}, "'10.0.0.5' is not host:port"),
        ({"JQS_REDIS_CLUSTER": "true", "JQS_REDIS_DATABASE": "3"}, "JQS_REDIS_DATABASE=3: a Redis Cluster has only"),
        ({"JQS_REDIS_CLUSTER": "true", "JQS_REDIS_SENTINELS": "a:1"}, "JQS_REDIS_CLUSTER=true and JQS_REDIS_SENTINELS"),
    ],
)
def test_a_cluster_setting_that_cannot_work_is_one_line(env: dict[str, str], complaint: str) -> None:
    from zipline_site.config import ConfigError, load_config

    with pytest.raises(ConfigError) as caught:
        load_config(env)
    assert complaint in str(caught.value) and "\n" not in str(caught.value)
