"""The scheduler as a service: its loop, graceful shutdown, liveness, structured logs, and several
schedulers at once (an every-second cron, exactly one job per fire time, with one scheduler SIGKILLed)."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from jobs import client
from jobs.broker import Broker, get_broker
from jobs.models import Job
from jobs.validation import JobSpec
from scheduler.models import Schedule
from scheduler.service import PROMOTE_CHECK, Scheduler
from tests.helpers import json_records, wait_for
from tests.procs import ROOT, process_env, running
from tests.test_scheduler_support import SchedulerThread

pytestmark = pytest.mark.django_db(transaction=True)


def fire_times(schedule: Schedule) -> list[datetime]:
    prefix = f"schedule:{schedule.pk}:"
    keys = Job.objects.filter(idempotency_key__startswith=prefix).values_list("idempotency_key", flat=True)
    return sorted(datetime.fromisoformat((k or "").removeprefix(prefix)) for k in keys)


# -- the loop, in process ---------------------------------------------------------------------------


def test_step_sleeps_until_the_next_due_job(broker: Broker) -> None:
    assert 0 < Scheduler(broker, identity="idle").step() <= PROMOTE_CHECK
    client.enqueue("test_noop", {}, delay=0.15)
    assert 0.05 < Scheduler(broker, identity="waiting").step() <= 0.15


def test_the_scheduler_runs_on_the_configuration_it_is_handed(broker: Broker) -> None:
    """Passed down, not read from the global settings: its reclaim duty comes back after the interval given."""
    handed = dataclasses.replace(
        settings.ZIPLINE, values={**settings.ZIPLINE.values, "scheduler_reclaim_interval": 7.5}
    )
    assert settings.ZIPLINE.scheduler.reclaim_interval != 7.5
    assert Scheduler(broker, identity="handed", config=handed).reclaim() == 7.5
    assert Scheduler(broker, identity="global").reclaim() == settings.ZIPLINE.scheduler.reclaim_interval


def test_a_failing_duty_backs_off_without_stopping_the_others(broker: Broker, caplog: pytest.LogCaptureFixture) -> None:
    scheduler = Scheduler(broker, identity="flaky")
    calls = {"cron": 0}

    def broken() -> float:
        raise ConnectionError("redis went away")

    def cron() -> float:
        calls["cron"] += 1
        return 0.0

    by_name = {d.name: d for d in scheduler.duties}
    by_name["promote"].run = broken
    by_name["cron"].run = cron
    caplog.set_level("INFO", logger="zipline.scheduler")
    scheduler.step()
    scheduler.step()
    assert calls["cron"] == 2 and by_name["promote"].failures == 1
    assert by_name["promote"].next_at > time.monotonic()  # backing off
    [failure] = [r for r in caplog.records if r.getMessage() == "scheduler duty failed"]
    assert failure.duty == "promote" and "redis went away" in failure.error  # type: ignore[attr-defined]


def test_cron_keeps_firing_while_redis_is_down_and_the_jobs_reach_redis_after(own_redis: Any) -> None:
    broker = get_broker()
    schedule = Schedule.objects.create(name="sturdy", cron="* * * * * *", job_type="test_noop")
    own_redis.stop()
    scheduler = SchedulerThread(identity="sturdy")
    scheduler.start()
    try:
        wait_for(lambda: len(fire_times(schedule)) >= 2, 10, message="cron fires without Redis")
        own_redis.start()
        wait_for(lambda: broker.epoch_present(), 15, message="rebuilt after Redis came back")
        fired = {str(pk) for pk in Job.objects.filter(name="sturdy").values_list("pk", flat=True)}
        wait_for(
            lambda: fired <= broker.ids("default")["ready"], 10, message="jobs fired during the outage reach Redis"
        )
    finally:
        scheduler.stop()
    assert scheduler.error is None


# -- the command ------------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_runscheduler_stops_cleanly_on_a_signal(broker: Broker, tmp_path: Path, signum: int) -> None:
    state_dir = tmp_path / "state"
    with running(["runscheduler"], tmp_path, "scheduler", JQS_STATE_DIR=state_dir) as proc:
        wait_for(broker.epoch_present, 20, message=proc.log()[-2000:])
        wait_for((state_dir / "zipline-scheduler.alive").exists, 10, message="liveness heartbeat")
        probe = subprocess.run(
            [sys.executable, "manage.py", "probe", "scheduler"],
            cwd=ROOT,
            env=process_env(JQS_STATE_DIR=state_dir),
            capture_output=True,
            text=True,
        )
        assert probe.returncode == 0, probe.stderr
        sent = time.monotonic()
        proc.signal(signum)
        assert proc.wait(10) == 0
        assert time.monotonic() - sent < 3
        lines = json_records(proc.log())
    messages = [line["message"] for line in lines]
    assert messages[0] == "scheduler started" and messages[-1] == "scheduler stopped"
    assert lines[0]["poll_interval"] == 30.0 and lines[0]["logger"] == "zipline.scheduler"
    assert "Traceback" not in proc.log()


@pytest.mark.slow
def test_two_schedulers_fire_an_every_second_cron_exactly_once_per_second_through_a_sigkill(
    broker: Broker, tmp_path: Path
) -> None:
    """F17: two runscheduler processes; one is SIGKILLed midway and restarted. Each fire time gets one
    job, none is missed, and delayed jobs due during the overlap are promoted exactly once."""
    schedule = Schedule.objects.create(
        name="every-second", cron="* * * * * *", job_type="test_noop", payload={"tick": True}
    )
    env = {"JQS_SCHEDULER_POLL_INTERVAL": "2s", "JQS_SCHEDULER_RECLAIM_INTERVAL": "1s"}
    with running(["runscheduler"], tmp_path, "a", **env) as a, running(["runscheduler"], tmp_path, "b", **env) as b:
        wait_for(lambda: len(fire_times(schedule)) >= 1, 20, message=a.log()[-2000:] + b.log()[-2000:])
        delayed = client.enqueue_many([JobSpec("test_noop", {"i": i}, delay=3) for i in range(300)])
        time.sleep(4)
        a.signal(signal.SIGKILL)  # mid-run, perhaps mid-promote or mid-fire
        a.wait(10)
        time.sleep(4)
        with running(["runscheduler"], tmp_path, "a2", **env) as a2:
            time.sleep(4)
            b.signal(signal.SIGTERM)
            assert b.wait(10) == 0
            a2.signal(signal.SIGTERM)
            assert a2.wait(10) == 0
            logs = [a.log(), b.log(), a2.log()]
    times = fire_times(schedule)
    assert len(times) >= 10
    seconds = [int(t.timestamp()) for t in times]
    assert seconds == list(range(seconds[0], seconds[0] + len(seconds))), "a fire time was missed or duplicated"
    lines = [line for log in logs for line in json_records(log)]
    fired = [line for line in lines if line["message"] == "schedule fired"]
    assert len(fired) <= len(times)  # a SIGKILLed scheduler may have committed a fire it never logged
    assert len({line["fire_at"] for line in fired}) == len(fired)
    # On time once a scheduler is up (fire times before that are caught up, within the misfire grace),
    # including right after the SIGKILL: the survivor carries on.
    prefix = f"schedule:{schedule.pk}:"
    up = min(datetime.fromisoformat(line["time"]) for line in lines if line["message"] == "scheduler started")
    for job in Job.objects.filter(name="every-second"):
        fire_at = datetime.fromisoformat(job.idempotency_key.removeprefix(prefix))  # type: ignore[union-attr]
        if fire_at > up:
            assert 0 <= (job.created_at - fire_at).total_seconds() < 1.0, f"{fire_at} fired late"
    # Delayed jobs due during the overlap: every one promoted (a ZSET cannot hold one twice), and the
    # promotion log lines, one per step, count no job twice.
    state = broker.ids("default")
    assert state["ready"] >= {str(j.pk) for j in delayed} and state["delayed"] == set()
    promoted = sum(line["count"] for line in lines if line["message"] == "promoted due jobs")
    assert 0 < promoted <= len(delayed)
