"""The scheduler logs an outage of Redis or the database once when it starts and once when it ends,
across all its duties, without tracebacks; a genuine bug in a duty is still an ERROR with a traceback."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from django.db import OperationalError

from jobs import client
from jobs.broker import get_broker
from scheduler.service import Scheduler
from tests.helpers import json_records, wait_for
from tests.procs import running

pytestmark = pytest.mark.django_db(transaction=True)

OUTAGE = 3.0  # seconds Redis stays down once the scheduler has noticed: several ticks of every duty


def test_runscheduler_logs_a_redis_outage_once_and_recovers(own_redis: Any, tmp_path: Path) -> None:
    broker = get_broker()
    env = {"JQS_SCHEDULER_POLL_INTERVAL": "0.5s", "JQS_SCHEDULER_RECLAIM_INTERVAL": "0.5s"}
    with running(["runscheduler"], tmp_path, "scheduler", **env) as proc:
        wait_for(broker.epoch_present, 20, message=proc.log()[-2000:])
        seen = len(proc.log())
        own_redis.stop()
        wait_for(lambda: _complaints(proc.log()[seen:]), 10, message="the scheduler noticing the outage")
        time.sleep(OUTAGE)  # the outage itself: every duty fails and retries several times meanwhile
        own_redis.start()  # empty: the scheduler must rebuild it
        wait_for(broker.epoch_present, 20, message="epoch marker restored")
        job = client.enqueue("test_noop", {}, delay=0.2)
        wait_for(lambda: str(job.pk) in broker.ids("default")["ready"], 15, message="promoted after recovery")

        try:
            wait_for(lambda: "Redis is back" in proc.log(), 15, message="'Redis is back'")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the outage logged {_summary(proc.log())}") from None
        log = proc.log()
    records = json_records(log)
    assert [r["level"] for r in records if r["message"] == "Redis unavailable; retrying with backoff"] == ["warning"]
    [back_line] = [r for r in records if r["message"] == "Redis is back"]
    assert back_line["down_seconds"] >= OUTAGE
    assert [r for r in records if r["level"] in ("error", "critical")] == []
    assert "Traceback" not in log
    assert not any(r["message"] == "database unavailable; retrying with backoff" for r in records)


def _complaints(log: str) -> list[dict[str, Any]]:
    """The JSON records at warning or above."""
    return [r for r in json_records(log) if r["level"] not in ("debug", "info")]


def _summary(log: str) -> str:
    counts = Counter(f"{r['level']}: {r['message']}" for r in _complaints(log))
    return f"{dict(counts)} and {log.count('Traceback')} tracebacks"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_database_outage_is_logged_once_and_a_bug_still_gets_an_error_with_one_traceback(
    broker: Any, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    scheduler = Scheduler(broker, identity="outage", clock=clock)
    by_name = {d.name: d for d in scheduler.duties}
    db_down = {"down": True}

    def needs_database() -> float:
        if db_down["down"]:
            raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")
        return 0.5

    def buggy() -> float:
        raise KeyError("bug")

    by_name["cron"].run = needs_database
    by_name["retention"].run = needs_database
    by_name["reclaim"].run = buggy
    caplog.set_level("INFO", logger="zipline.scheduler")
    for _ in range(5):
        scheduler.step()
        clock.now += 10  # past every backoff: each duty runs every step
    db_down["down"] = False
    scheduler.step()
    clock.now += 10
    scheduler.step()

    def lines(message: str) -> list[Any]:
        return [r for r in caplog.records if r.getMessage() == message]

    [start] = lines("database unavailable; retrying with backoff")
    assert start.levelname == "WARNING" and not start.exc_info and "Connection refused" in start.error
    [end] = lines("database is back")
    assert end.down_seconds == 50.0
    outage = [r for r in caplog.records if getattr(r, "duty", None) in ("cron", "retention")]
    assert all(r.levelname != "ERROR" for r in outage)
    bug = lines("scheduler duty failed")
    assert len(bug) == 7 and {r.duty for r in bug} == {"reclaim"}
    assert all(r.levelname == "ERROR" for r in bug)
    assert [bool(r.exc_info) for r in bug] == [True] + [False] * 6  # one traceback, not one a tick
    assert lines("Redis unavailable; retrying with backoff") == []
