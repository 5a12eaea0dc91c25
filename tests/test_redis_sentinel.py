"""Redis through Sentinel: settings, start-up refusals, health, and a failover under load that loses nothing (F12).

Every test starts its own master, replica and three sentinels (tests/redis_sentinel.py); the shared Redis
is used only for the jobs' own execution counts, which must outlive the master.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from django.conf import settings

from jobs import client
from jobs.broker import get_broker, reset_broker
from jobs.health import health_payload
from jobs.models import Job, JobAttempt, Outcome, Status
from jobs.validation import JobSpec
from tests.helpers import override_zipline, wait_for
from tests.procs import manage, running
from tests.redis_sentinel import MASTER_NAME, Sentinels
from zipline_site.config import ConfigError, load_config

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
FAILOVER_LOGGED = "redis master changed (failover followed)"


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[Sentinels]:
    group = Sentinels(tmp_path)
    group.start()
    try:
        yield group
    finally:
        group.stop()


@pytest.fixture
def through_sentinels(sentinels: Sentinels) -> Iterator[Sentinels]:
    """This process's broker and cache find the master through ``sentinels``."""
    with override_zipline(redis_sentinels=sentinels.addresses, redis_sentinel_master=MASTER_NAME):
        reset_broker()
        try:
            yield sentinels
        finally:
            reset_broker()


def sentinel_env(group: Sentinels, **more: Any) -> dict[str, Any]:
    return {"JQS_REDIS_SENTINELS": group.addresses, "JQS_REDIS_SENTINEL_MASTER": MASTER_NAME, **more}


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("127.0.0.1:99999", "the port must be a number from 1 to 65535"),
        ("127.0.0.1:26379,10.0.0.2", "'10.0.0.2' is not host:port"),
        ("sentinel-a:port", "the port must be a number"),
    ],
)
def test_a_bad_sentinel_list_is_one_line_naming_the_setting(value: str, complaint: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({"JQS_REDIS_SENTINELS": value})
    message = str(caught.value)
    assert message.startswith(f"JQS_REDIS_SENTINELS={value!r}: ")
    assert complaint in message
    assert "\n" not in message


def test_a_sentinel_password_never_shows_in_an_error() -> None:
    config = load_config({"JQS_REDIS_SENTINELS": "a:1,b:2", "JQS_REDIS_SENTINEL_PASSWORD": "s3cret"})
    assert config.redis.sentinels == "a:1,b:2"
    assert "s3cret" not in repr(config.redis)


def test_the_broker_finds_the_master_and_health_names_it(through_sentinels: Sentinels) -> None:
    broker = get_broker()
    assert broker.master_address() == f"127.0.0.1:{through_sentinels.master.port}"
    job = client.enqueue("test_noop")
    assert broker.ids("default")["ready"] == {str(job.pk)}
    status, body = health_payload(detailed=True)
    assert status == 200, body
    assert body["redis"]["master"] == f"127.0.0.1:{through_sentinels.master.port}"
    _, anonymous = health_payload(detailed=False)
    assert "master" not in anonymous["redis"]  # an address is not for anonymous callers


def test_an_unknown_master_name_stops_the_commands_in_one_line(sentinels: Sentinels) -> None:
    env = {"JQS_REDIS_SENTINELS": sentinels.addresses, "JQS_REDIS_SENTINEL_MASTER": "nosuchmaster"}
    for command in ("runworkers", "runscheduler"):
        done = manage(command, **env)
        assert done.returncode == 2, (command, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert "JQS_REDIS_SENTINEL_MASTER='nosuchmaster'" in lines[0]
        assert MASTER_NAME in lines[0]  # the name the sentinels do know


def test_sentinels_out_of_reach_are_unavailable_not_a_traceback(tmp_path: Path) -> None:
    from tests.procs import free_port

    env = {"JQS_REDIS_SENTINELS": f"127.0.0.1:{free_port()}", "JQS_REDIS_SENTINEL_MASTER": MASTER_NAME}
    done = manage("runworkers", **env)
    assert done.returncode == 3, done.stderr
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert f"the master '{MASTER_NAME}' of the sentinels at" in done.stderr


def test_a_failover_under_load_loses_no_job(through_sentinels: Sentinels, tmp_path: Path) -> None:
    """F12: SIGKILL the master while a pool runs and a producer submits. The pool and the scheduler follow the
    promoted replica without a restart, and every job completes: once, unless it was in flight at the
    failover (then again after its lease, its first attempt recorded as lost)."""
    group = through_sentinels
    counts = f"{settings.ZIPLINE.redis.key_prefix}:runs"  # on the shared Redis: it outlives the master
    ledger = {"count": counts}
    env = sentinel_env(
        group,
        JQS_REDIS_URL=os.environ["JQS_REDIS_URL"],  # with sentinels only its database number is used
        JQS_WORKER_LEASE_TTL="4s",
        JQS_SCHEDULER_POLL_INTERVAL="1s",
        JQS_SCHEDULER_RECLAIM_INTERVAL="0.5s",
        JQS_SCHEDULER_RECONCILE_GRACE="2s",
    )
    produced: list[str] = []
    stop = threading.Event()

    def produce() -> None:
        while not stop.is_set() and len(produced) < 3000:
            jobs = client.enqueue_many([JobSpec("test_record", ledger) for _ in range(20)])
            produced.extend(str(job.pk) for job in jobs)
            time.sleep(0.01)

    from tests.procapp.processors import client as shared_redis

    shared_redis().delete(counts)
    with (
        running(["runworkers", "--processes", "2"], tmp_path, "pool", **env) as pool,
        running(["runscheduler"], tmp_path, "scheduler", **env) as scheduler,
    ):
        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        wait_for(lambda: Job.objects.filter(status=Status.COMPLETED).count() >= 300, 30, 0.05, "jobs running")
        old_master = group.master.port
        killed_at = time.monotonic()
        group.master.stop()  # SIGKILL
        wait_for(lambda: group.master_port() != old_master, 30, 0.1, "the sentinels promoted the replica")
        promoted = f"127.0.0.1:{group.replica.port}"
        before = Job.objects.filter(status=Status.COMPLETED).count()
        wait_for(lambda: Job.objects.filter(status=Status.COMPLETED).count() > before, 30, 0.02, "a job after")
        outage = time.monotonic() - killed_at
        wait_for(lambda: len(produced) >= 1500, 60, 0.05, "the producer went on through the failover")
        stop.set()
        producer.join(30)
        wait_for(
            lambda: Job.objects.filter(pk__in=produced, status=Status.COMPLETED).count() == len(produced),
            90,
            0.2,
            "every job completed",
        )
        # This process, as the API: its submits followed the failover (the producer went on), and the health
        # endpoint names the promoted replica without a restart.
        status, body = health_payload(detailed=True)
        assert status == 200 and body["redis"]["master"] == promoted, body
        # The scheduler follows at its next Redis call, which its back-off after the outage may still delay:
        # wait for its line before stopping it (stopped sooner, it would have nothing to follow or log).
        wait_for(
            lambda: any(r.get("message") == FAILOVER_LOGGED for r in scheduler.records()),
            30,
            0.1,
            "the scheduler followed the failover and logged it",
        )
        pool.signal(signal.SIGTERM)
        scheduler.signal(signal.SIGTERM)
        assert pool.wait(30) == 0 and scheduler.wait(30) == 0
    counted = cast(dict[bytes, bytes], shared_redis().hgetall(counts))
    runs = {key.decode(): int(value) for key, value in counted.items()}
    lost = {str(pk) for pk in JobAttempt.objects.filter(outcome=Outcome.LOST).values_list("job_id", flat=True)}
    assert set(runs) == set(produced)
    twice = {job_id for job_id, n in runs.items() if n > 1}
    assert twice <= lost, f"run twice without a lost attempt: {sorted(twice - lost)[:5]}"
    assert JobAttempt.objects.filter(job_id__in=produced, outcome=Outcome.COMPLETED).count() == len(produced)
    changed = [r for r in pool.records() + scheduler.records() if r.get("message") == FAILOVER_LOGGED]
    per_process = Counter(r["pid"] for r in changed)
    assert per_process and set(per_process.values()) == {1}, per_process  # once per process, not per command
    assert scheduler.popen.pid in per_process, "the scheduler followed the failover and logged it"
    assert {r["address"] for r in changed} == {promoted}, changed
    # Every pool of the scheduler (preflight's, the duties', the quick ones) shares one memory of the master,
    # whichever sentinel answered first: one first sighting, then the change.
    found = [r for r in scheduler.records() if r.get("message") == "redis master found through sentinel"]
    assert len(found) == 1, found
    print(
        f"\nfailover: first job completed {outage:.2f} s after the master died; {len(produced)} jobs, "
        f"{len(lost)} lost in flight and run again"
    )


def test_the_dashboard_names_the_master_in_use(through_sentinels: Sentinels, admin_client: Any) -> None:
    page = admin_client.get("/dashboard/").content.decode()
    assert (
        f'data-testid="redis-master">Redis master, chosen by Sentinel: <span class="mono">127.0.0.1:{through_sentinels.master.port}<'
        in page
    )


def test_the_cache_finds_the_master_through_the_sentinels_too(sentinels: Sentinels) -> None:
    """The API's cache (throttles, token memory) follows the same sentinels as the broker."""
    script = "from django.core.cache import cache; cache.set('probe', 41 + 1); print(cache.get('probe'))"
    done = manage("shell", "-c", script, **sentinel_env(sentinels, JQS_REDIS_URL="redis://127.0.0.1:1/0"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "42"
    import redis

    keys = cast(list[bytes], redis.Redis(port=sentinels.master.port).keys("*probe"))
    assert len(keys) == 1, keys  # in the master the sentinels name, not at the URL's host (nothing listens there)
