"""Start-up checks: a Redis that may evict keys (F13) is a warning, or a refusal in strict mode; one that
refuses ZipLine (database number, password) stops the workers and the scheduler with one line."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from jobs.broker import get_broker
from jobs.broker.checks import RedisPolicyError, check_eviction_policy, eviction_problem, refusal
from tests.helpers import wait_for
from tests.procs import running


def test_noeviction_passes_and_an_evicting_policy_is_named(own_redis: Any) -> None:
    broker = get_broker()
    assert eviction_problem(broker) is None  # redis-server's default
    broker.client.config_set("maxmemory-policy", "allkeys-lru")
    problem = eviction_problem(broker)
    assert problem is not None and "'allkeys-lru'" in problem and "noeviction" in problem


def test_an_evicting_policy_warns_or_refuses_in_strict_mode(own_redis: Any, caplog: pytest.LogCaptureFixture) -> None:
    broker = get_broker()
    broker.client.config_set("maxmemory-policy", "volatile-ttl")
    with caplog.at_level(logging.WARNING, logger="zipline.redis"):
        check_eviction_policy(broker, require_noeviction=False)
    assert [r.getMessage() for r in caplog.records if "volatile-ttl" in r.getMessage()]
    with pytest.raises(RedisPolicyError, match="volatile-ttl"):
        check_eviction_policy(broker, require_noeviction=True)


@pytest.mark.django_db(transaction=True)
def test_strict_mode_stops_the_workers_and_the_scheduler_with_one_line(own_redis: Any, tmp_path: Path) -> None:
    get_broker().client.config_set("maxmemory-policy", "allkeys-lru")
    for command in ("runworkers", "runscheduler"):
        with running([command], tmp_path, command, JQS_REDIS_REQUIRE_NOEVICTION="true") as proc:
            assert proc.wait(30) == 2
            log = proc.log()
            assert "maxmemory-policy is 'allkeys-lru'" in log and "Traceback" not in log


@pytest.mark.django_db(transaction=True)
def test_by_default_the_workers_start_and_warn(own_redis: Any, tmp_path: Path) -> None:
    get_broker().client.config_set("maxmemory-policy", "allkeys-lru")
    with running(["runworkers", "--processes", "1"], tmp_path) as pool:
        wait_for(lambda: "supervisor started" in pool.log(), 30, message="the pool started")
        assert "maxmemory-policy is 'allkeys-lru'" in pool.log()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("command", ["runscheduler", "runworkers"])
@pytest.mark.parametrize("how", ["database out of range", "wrong password"])
def test_a_redis_that_refuses_zipline_stops_the_services_with_one_line(
    own_redis: Any, tmp_path: Path, how: str, command: str
) -> None:
    """A configuration mistake, the same exit status (2) from both: runworkers answered 1 before."""
    port = own_redis.port
    url = f"redis://127.0.0.1:{port}/99" if how == "database out of range" else f"redis://:nope@127.0.0.1:{port}/0"
    with running([command], tmp_path, command, JQS_REDIS_URL=url) as proc:
        assert proc.wait(30) == 2
        log = proc.log()
    assert "refuses ZipLine" in log and "check JQS_REDIS_URL" in log and "Traceback" not in log
    assert ":nope@" not in log  # the password is masked


def test_a_redis_out_of_reach_is_no_refusal(own_redis: Any) -> None:
    own_redis.stop()
    assert refusal(get_broker(), own_redis.url) is None  # waited for, not refused
