"""Issue 19, item 8: anonymous ``/health`` says only ok or error per dependency; why a check failed
(host, port, database name) goes to the log, and to callers with a token or a staff session."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connections
from django.test import Client, override_settings
from rest_framework.test import APIClient

from jobs import health
from tests.test_api_health import _BrokenDatabase

pytestmark = pytest.mark.django_db(transaction=True)

DOWN_REDIS = "redis://127.0.0.1:1/0"


def _staff_session() -> Client:
    user = User.objects.create_user(f"staff-{uuid.uuid4().hex[:6]}", password="x-long-password-1", is_staff=True)
    client = Client()
    client.force_login(user)
    return client


def test_anonymous_health_hides_why_redis_failed(broker: Any, caplog: pytest.LogCaptureFixture) -> None:
    with override_settings(REDIS_URL=DOWN_REDIS), caplog.at_level(logging.WARNING, "zipline.health"):
        response = APIClient().get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["redis"] == {"status": "error"} and body["status"] == "error"
    assert "127.0.0.1" not in response.content.decode() and "Connection" not in response.content.decode()
    assert any("127.0.0.1" in str(getattr(r, "error", "")) for r in caplog.records), "the log keeps the details"


def test_anonymous_health_hides_why_the_database_failed(broker: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "connections", _BrokenDatabase())
    response = APIClient(HTTP_AUTHORIZATION="Bearer not-a-valid-token-but-long-enough-000000").get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["database"] == {"status": "error"}
    name = str(connections["default"].settings_dict["NAME"])
    text = response.content.decode()
    assert name not in text and "127.0.0.1" not in text and "port" not in text.lower()


def test_a_token_sees_why_a_check_failed(api: APIClient) -> None:
    with override_settings(REDIS_URL=DOWN_REDIS):
        body = api.get("/health").json()
    assert body["redis"]["status"] == "error" and "127.0.0.1" in body["redis"]["error"]


def test_a_staff_session_sees_why_a_check_failed(broker: Any) -> None:
    with override_settings(REDIS_URL=DOWN_REDIS):
        body = _staff_session().get("/health").json()
    assert body["redis"]["status"] == "error" and "127.0.0.1" in body["redis"]["error"]
