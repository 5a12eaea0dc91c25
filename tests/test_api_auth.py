"""Tokens (Bearer and Token), permissions for cancel/retry/delete, open mode, and manage.py createtoken."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from jobs import client
from jobs.api import auth
from jobs.broker import reset_broker
from jobs.models import ApiToken, Job, Status
from jobs.tokens import create_token
from tests.helpers import EMAIL_PAYLOAD, override_zipline
from tests.procs import free_port, manage

pytestmark = pytest.mark.django_db(transaction=True)

ENDPOINTS = [
    ("get", "/api/v1/jobs"),
    ("post", "/api/v1/jobs"),
    ("post", "/api/v1/jobs/batch"),
    ("get", f"/api/v1/jobs/{uuid.uuid4()}"),
    ("delete", f"/api/v1/jobs/{uuid.uuid4()}"),
    ("post", f"/api/v1/jobs/{uuid.uuid4()}/cancel"),
    ("post", f"/api/v1/jobs/{uuid.uuid4()}/retry"),
    ("get", "/api/v1/queues/emails/stats"),
    ("post", "/api/v1/queues/emails/pause"),
    ("post", "/api/v1/queues/emails/resume"),
    ("get", "/api/v1/stats"),
    ("get", "/api/v1/workers/stats"),
]


def user_with(*perms: str, active: bool = True) -> User:
    user = User.objects.create_user(f"u-{uuid.uuid4().hex[:8]}", is_active=active)
    user.user_permissions.add(*Permission.objects.filter(codename__in=perms))
    return user


def as_header(user: User, keyword: str = "Bearer") -> str:
    return f"{keyword} {create_token(user)}"


@pytest.mark.parametrize("method, path", ENDPOINTS)
def test_every_api_endpoint_needs_a_token(broker: Any, method: str, path: str) -> None:
    response = getattr(APIClient(), method)(path)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer a b",
        "Bearer 0000000000000000000000000000000000000000",
        "Token nope",
        "Bearer " + "a" * 41,
        "Bearer caf\u00e9",
        "bearer \u0000",
    ],
)
def test_bad_tokens_are_401(broker: Any, header: str) -> None:
    response = APIClient().get("/api/v1/stats", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401 and response.json()["error"]["code"] == "authentication_failed"


def test_other_schemes_are_not_authenticated(broker: Any) -> None:
    response = APIClient().get("/api/v1/stats", HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz")
    assert response.status_code == 401 and response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize("keyword", ["Bearer", "Token", "bearer", "TOKEN"])
def test_bearer_and_token_keywords(broker: Any, keyword: str) -> None:
    response = APIClient().get("/api/v1/stats", HTTP_AUTHORIZATION=as_header(user_with("view_job"), keyword))
    assert response.status_code == 200


def test_inactive_user_is_refused(broker: Any) -> None:
    response = APIClient().get("/api/v1/stats", HTTP_AUTHORIZATION=as_header(user_with(active=False)))
    assert response.status_code == 401


def test_any_token_may_submit_but_reading_and_actions_need_permissions(broker: Any) -> None:
    c = APIClient(HTTP_AUTHORIZATION=as_header(user_with()))
    job_id = c.post("/api/v1/jobs", {"type": "send_email", "payload": EMAIL_PAYLOAD}, format="json").json()["id"]
    for method, path in (("get", ""), ("post", "/cancel"), ("post", "/retry"), ("delete", "")):
        response = getattr(c, method)(f"/api/v1/jobs/{job_id}{path}")
        assert response.status_code == 403, (method, path)
        assert response.json()["error"]["code"] == "permission_denied"
    assert Job.objects.get(pk=job_id).status == Status.PENDING


def test_cancel_and_retry_need_change_job(broker: Any) -> None:
    c = APIClient(HTTP_AUTHORIZATION=as_header(user_with("change_job")))
    job = client.enqueue("send_email", EMAIL_PAYLOAD)
    assert c.get(f"/api/v1/jobs/{job.pk}").status_code == 200  # as in the admin, change implies view
    assert c.post(f"/api/v1/jobs/{job.pk}/cancel").status_code == 200
    assert c.post(f"/api/v1/jobs/{job.pk}/retry").status_code == 200
    assert c.delete(f"/api/v1/jobs/{job.pk}").status_code == 403


def test_delete_needs_delete_job(broker: Any) -> None:
    c = APIClient(HTTP_AUTHORIZATION=as_header(user_with("delete_job")))
    job = client.enqueue("send_email", EMAIL_PAYLOAD)
    Job.objects.filter(pk=job.pk).update(status=Status.COMPLETED)
    assert c.post(f"/api/v1/jobs/{job.pk}/cancel").status_code == 403
    assert c.delete(f"/api/v1/jobs/{job.pk}").status_code == 204


def test_schema_and_docs_are_open(broker: Any) -> None:
    for path in ("/api/schema/", "/api/docs/", "/api/redoc/", "/health"):
        assert APIClient().get(path).status_code == 200, path


def test_open_mode_lets_requests_through_and_says_so(broker: Any, caplog: pytest.LogCaptureFixture) -> None:
    auth._warned.clear()
    with override_zipline(api_open=True, debug=True), caplog.at_level(logging.WARNING, logger="zipline.api"):
        anonymous = APIClient()
        job_id = anonymous.post("/api/v1/jobs", {"type": "send_email", "payload": EMAIL_PAYLOAD}, format="json").json()[
            "id"
        ]
        assert anonymous.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 200
        assert anonymous.get("/api/v1/stats").status_code == 200
    warnings = [r for r in caplog.records if "WITHOUT a token" in r.getMessage()]
    assert len(warnings) == 1


def test_open_mode_needs_debug(broker: Any) -> None:
    with override_zipline(api_open=True, debug=False):
        assert APIClient().get("/api/v1/stats").status_code == 401


# -- createtoken ---------------------------------------------------------------------------------------------


def test_createtoken_makes_the_user_and_prints_a_new_key_each_time(broker: Any) -> None:
    made = manage("createtoken", "robot")
    assert made.returncode == 0 and made.stderr.strip() == "created user 'robot'"
    first = made.stdout.strip()
    assert len(first) == 40 and not User.objects.get(username="robot").has_usable_password()
    second = manage("createtoken", "robot").stdout.strip()
    assert second != first and ApiToken.objects.filter(user__username="robot").count() == 2
    third = manage("createtoken", "robot", "--regenerate")
    assert "revoked 2 older token(s)" in third.stderr
    key = third.stdout.strip()
    assert (
        APIClient()
        .post("/api/v1/jobs", {"type": "send_email", "payload": EMAIL_PAYLOAD}, HTTP_AUTHORIZATION=f"Bearer {key}")
        .status_code
        == 201
    )
    assert APIClient().get("/api/v1/stats", HTTP_AUTHORIZATION=f"Bearer {first}").status_code == 401


def test_createtoken_superuser(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("createtoken", "boss", "--superuser")
    user = User.objects.get(username="boss")
    key = capsys.readouterr().out.strip()
    assert user.is_superuser and user.is_staff and ApiToken.objects.get(user=user).prefix == key[:8]


def test_tokens_are_managed_in_the_admin() -> None:
    assert admin.site.is_registered(ApiToken)
    boss = User.objects.create_superuser("admin-user", password="pw-123456789")
    c = APIClient()
    c.force_login(boss)
    assert c.get("/admin/jobs/apitoken/").status_code == 200


# -- remembered tokens -------------------------------------------------------------------------------------


def token_queries(api_client: APIClient, path: str) -> int:
    """Ask ``path``; how many queries read the token table (0: the token was remembered)."""
    with CaptureQueriesContext(connection) as queries:
        assert api_client.get(path).status_code == 200
    return sum("jobs_apitoken" in q["sql"] for q in queries.captured_queries)


def test_a_token_revoked_by_another_process_is_refused_by_the_next_request(broker: Any) -> None:
    made = manage("createtoken", "robot", "--viewer")
    c = APIClient(HTTP_AUTHORIZATION=f"Bearer {made.stdout.strip()}")
    path = f"/api/v1/jobs/{client.enqueue('send_email', EMAIL_PAYLOAD).pk}"
    assert token_queries(c, path) == 1
    assert token_queries(c, path) == 0  # remembered by this process
    revoked = manage("createtoken", "robot", "--regenerate")
    assert revoked.returncode == 0, revoked.stderr
    assert c.get(path).status_code == 401


def test_a_redis_that_lost_its_data_trusts_no_remembered_token(own_redis: Any) -> None:
    c = APIClient(HTTP_AUTHORIZATION=as_header(user_with("view_job")))
    path = f"/api/v1/jobs/{client.enqueue('send_email', EMAIL_PAYLOAD).pk}"
    assert token_queries(c, path) == 1
    assert token_queries(c, path) == 0
    own_redis.restart()  # no persistence: the generation is gone, and a new one is made
    assert token_queries(c, path) == 1
    assert token_queries(c, path) == 0


def test_without_redis_every_request_asks_the_database(broker: Any) -> None:
    c = APIClient(HTTP_AUTHORIZATION=as_header(user_with("view_job")))
    path = f"/api/v1/jobs/{client.enqueue('send_email', EMAIL_PAYLOAD).pk}"
    assert token_queries(c, path) == 1
    with override_settings(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"):
        reset_broker()
        try:
            assert token_queries(c, path) == 1
            assert token_queries(c, path) == 1
        finally:
            reset_broker()
