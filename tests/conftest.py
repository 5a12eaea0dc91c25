"""Fixtures shared by the tests. The environment is set in tests/settings.py, before Django starts."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.helpers import DrivenClock, override_zipline


def pytest_report_header() -> str:
    """Which Tasks framework the Django tasks tests run on: Django's own, or the django-tasks backport."""
    import django

    from jobs.tasks_backend.compat import FRAMEWORK

    return f"Django {django.get_version()}; Django tasks framework: {FRAMEWORK}"


@pytest.fixture
def broker() -> Iterator[object]:
    """A broker on the shared Redis under a key prefix of this test's own; its keys are deleted after."""
    from jobs.broker import get_broker, reset_broker

    prefix = f"ziptest-{uuid.uuid4().hex[:10]}"
    with override_zipline(redis_key_prefix=prefix):
        reset_broker()
        broker = get_broker()
        try:
            yield broker
        finally:
            keys = list(broker.client.scan_iter(match=f"{prefix}:*", count=1000))
            if keys:
                broker.client.delete(*keys)
            reset_broker()


@pytest.fixture
def clock(broker: object) -> DrivenClock:
    """The broker's scripts run on a clock the test drives (``clock.advance(ms)``), not Redis TIME;
    the broker, and with it the clock, is forgotten after the test."""
    driven = DrivenClock()
    broker.clock = driven  # type: ignore[attr-defined]
    return driven


@pytest.fixture
def own_pg_cluster() -> Iterator[object]:
    """A PostgreSQL cluster of this test's own (initdb, free port), which the test may crash and restart."""
    import subprocess

    from tests.pg_cluster import PgCluster

    pg = PgCluster()
    pg.create()
    try:
        yield pg
    finally:
        subprocess.run(["pkill", "-f", f"-D {pg.data}"], capture_output=True)
        try:
            pg.stop("immediate")
        except subprocess.CalledProcessError:
            pass  # already down
        pg.remove()


@pytest.fixture
def own_redis(tmp_path: object) -> Iterator[object]:
    """A redis-server of this test's own (free port, no persistence), made the configured Redis."""
    from pathlib import Path

    from django.test import override_settings

    from jobs.broker import reset_broker
    from tests.redis_server import RedisServer

    server = RedisServer(Path(str(tmp_path)))
    server.start()
    with override_settings(REDIS_URL=server.url):
        reset_broker()
        try:
            yield server
        finally:
            server.stop()
            reset_broker()


@pytest.fixture
def api(broker: object) -> object:
    """An API client with the token of a new superuser (and the test's own Redis prefix)."""
    from django.contrib.auth.models import User

    from tests.helpers import token_client

    return token_client(User.objects.create_superuser(f"admin-{uuid.uuid4().hex[:6]}"))
