"""The one pre-flight of runworkers and runscheduler: each problem has its named exit status."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from django.core.management.base import CommandError

from jobs.broker import Broker, get_broker
from jobs.preflight import preflight
from zipline_site.exit_codes import ExitCode


def test_the_exit_codes_keep_their_numbers() -> None:
    """Orchestrators and scripts match on the numbers (docs/operations.md lists them)."""
    assert [(code.name, int(code)) for code in ExitCode] == [
        ("OK", 0),
        ("FAILURE", 1),
        ("CONFIG", 2),
        ("UNAVAILABLE", 3),
        ("INTERRUPTED", 130),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("wait_for_redis", [False, True])
def test_a_redis_that_answers_passes(own_redis: Any, wait_for_redis: bool) -> None:
    preflight(get_broker(), own_redis.url, require_noeviction=True, wait_for_redis=wait_for_redis)


@pytest.mark.django_db
def test_a_redis_out_of_reach_is_unavailable_unless_waited_for(own_redis: Any) -> None:
    url = own_redis.url.replace("redis://", "redis://:SecretPw@")
    own_redis.stop()
    with pytest.raises(CommandError) as refused:
        preflight(get_broker(), url, require_noeviction=False, wait_for_redis=False)
    assert refused.value.returncode == ExitCode.UNAVAILABLE
    assert str(refused.value).startswith(f"cannot reach Redis at redis://:***@127.0.0.1:{own_redis.port}/")
    assert "SecretPw" not in str(refused.value)
    preflight(get_broker(), url, require_noeviction=False, wait_for_redis=True)  # the scheduler waits


@pytest.mark.django_db
@pytest.mark.parametrize("wait_for_redis", [False, True])
@pytest.mark.parametrize("url", ["redis://:nope@127.0.0.1:{port}/0", "redis://127.0.0.1:{port}/99"])
def test_a_redis_that_refuses_zipline_is_a_configuration_error(own_redis: Any, wait_for_redis: bool, url: str) -> None:
    url = url.format(port=own_redis.port)
    with pytest.raises(CommandError) as refused:
        preflight(Broker(redis.Redis.from_url(url), "t"), url, require_noeviction=False, wait_for_redis=wait_for_redis)
    assert refused.value.returncode == ExitCode.CONFIG and "refuses ZipLine" in str(refused.value)
    assert ":nope@" not in str(refused.value)


@pytest.mark.django_db
def test_an_evicting_redis_is_a_configuration_error_in_strict_mode(own_redis: Any) -> None:
    broker = get_broker()
    broker.client.config_set("maxmemory-policy", "allkeys-lru")
    preflight(broker, own_redis.url, require_noeviction=False, wait_for_redis=False)  # a warning only
    with pytest.raises(CommandError) as refused:
        preflight(broker, own_redis.url, require_noeviction=True, wait_for_redis=True)
    assert refused.value.returncode == ExitCode.CONFIG and "allkeys-lru" in str(refused.value)
