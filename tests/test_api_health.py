"""GET /health: the seed's shape, open to all, and 503 with "error" when Redis or the database is gone."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.db import connections as real_connections
from django.db.utils import ConnectionHandler
from django.test import override_settings
from rest_framework.test import APIClient

from jobs import health
from jobs.broker import heartbeat

pytestmark = pytest.mark.django_db(transaction=True)


def test_health_ok_in_the_seed_shape(broker: Any) -> None:
    response = APIClient().get("/health")
    assert response.status_code == 200
    body = response.json()
    assert list(body)[:4] == ["status", "timestamp", "version", "workers"]
    assert body["status"] == "ok" and body["version"] == "0.1.0" and body["timestamp"].endswith("Z")
    assert body["workers"] == {"running": False, "count": 0}
    assert body["redis"]["status"] == "ok" and body["database"]["status"] == "ok"
    assert body["redis"]["latency_ms"] >= 0 and body["database"]["latency_ms"] >= 0


def test_health_counts_live_workers(broker: Any) -> None:
    heartbeat.publish(broker, "w1", {"hostname": "h", "pid": 1, "concurrency": 2, "started_at": time.time()})
    assert APIClient().get("/health").json()["workers"] == {"running": True, "count": 1}


def test_health_needs_no_token_and_ignores_a_bad_one(broker: Any) -> None:
    response = APIClient().get("/health", HTTP_AUTHORIZATION="Bearer nonsense")
    assert response.status_code == 200


def test_redis_down_is_503(api: APIClient) -> None:
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        started = time.monotonic()
        response = api.get("/health")
        assert time.monotonic() - started < 5
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error" and body["redis"]["status"] == "error" and body["redis"]["error"]
    assert body["database"]["status"] == "ok" and body["workers"] == {"running": False, "count": 0}


class _BrokenDatabase:
    """A ConnectionHandler whose new connections go to a port nobody listens on."""

    def create_connection(self, alias: str) -> Any:
        settings = {**real_connections[alias].settings_dict, "PORT": "1", "HOST": "127.0.0.1"}
        return ConnectionHandler({alias: settings}).create_connection(alias)


def test_database_down_is_503(api: APIClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "connections", _BrokenDatabase())
    response = api.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert (
        body["status"] == "error"
        and body["database"]["status"] == "error"
        and "OperationalError" in body["database"]["error"]
    )
    assert body["redis"]["status"] == "ok"


def test_health_payload_is_view_agnostic(broker: Any) -> None:
    status, body = health.health_payload()
    assert status == 200 and body["status"] == "ok"
