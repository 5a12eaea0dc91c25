"""Schedules over REST (/api/v1/schedules) and in the admin: CRUD, pause/resume/trigger, clear errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from rest_framework.test import APIClient

from jobs.broker import Broker
from jobs.models import Job, Status
from jobs.tokens import create_token
from scheduler.models import Schedule

pytestmark = pytest.mark.django_db(transaction=True)

BODY: dict[str, Any] = {
    "name": "nightly",
    "cron": "0 3 * * *",
    "timezone": "Europe/Paris",
    "job": {"type": "test_noop", "payload": {"report": "daily"}, "queue": "reports", "priority": 5},
    "misfire_policy": "run_once",
}


def api(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {create_token(user)}")
    return client


@pytest.fixture
def admin_user() -> User:
    return User.objects.create_superuser("admin", "admin@example.com", "pw-123456")


@pytest.fixture
def reader() -> User:
    return User.objects.create_user("reader", "reader@example.com", "pw-123456")


def details(response: Any) -> dict[str, list[str]]:
    return response.json()["error"]["details"]


def test_create_list_read_update_delete(admin_user: User) -> None:
    client = api(admin_user)
    created = client.post("/api/v1/schedules", BODY, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["job"] == {
        "type": "test_noop",
        "payload": {"report": "daily"},
        "queue": "reports",
        "priority": 5,
        "retry": None,
        "timeout": None,
    }
    assert body["enabled"] is True and body["paused"] is False and body["next_fire_at"]
    sid = body["id"]

    listed = client.get("/api/v1/schedules")
    assert listed.status_code == 200
    items = listed.json()["results"] if isinstance(listed.json(), dict) else listed.json()
    assert [s["name"] for s in items] == ["nightly"]
    assert client.get(f"/api/v1/schedules/{sid}").json()["cron"] == "0 3 * * *"

    before = Schedule.objects.get(pk=sid).next_fire_at
    patched = client.patch(f"/api/v1/schedules/{sid}", {"cron": "*/5 * * * *", "job": {"priority": 9}}, format="json")
    assert patched.status_code == 200, patched.content
    row = Schedule.objects.get(pk=sid)
    assert (row.cron, row.priority, row.job_type) == ("*/5 * * * *", 9, "test_noop")
    assert row.next_fire_at != before and row.next_fire_at.minute % 5 == 0  # type: ignore[union-attr]

    put = client.put(f"/api/v1/schedules/{sid}", {**BODY, "name": "renamed"}, format="json")
    assert put.status_code == 200 and Schedule.objects.get(pk=sid).name == "renamed"

    assert client.delete(f"/api/v1/schedules/{sid}").status_code == 204
    assert not Schedule.objects.exists()
    assert client.get(f"/api/v1/schedules/{sid}").status_code == 404


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"cron": "61 * * * *"}, "cron", "not a valid cron expression"),
        ({"cron": "every day"}, "cron", "has 2 fields"),
        ({"cron": "0 0 30 2 *"}, "cron", "never matches"),
        ({"timezone": "Mars/Olympus"}, "timezone", "not a known IANA time zone"),
        ({"job": {"type": "nope"}}, "job.type", "unknown job type"),
        ({"job": {"type": "test_noop", "retry": {"max_retries": "x"}}}, "job.retry.max_retries", "not a whole number"),
        ({"job": {"type": "test_noop", "priority": 101}}, "job.priority", "out of range"),
        ({"misfire_policy": "sometimes"}, "misfire_policy", ""),
        ({"misfire_grace": 0}, "misfire_grace", "out of range: seconds from 1 to 31536000"),
        ({"misfire_grace": "inf"}, "misfire_grace", "out of range"),
        ({"misfire_grace": "1e400"}, "misfire_grace", "out of range"),
        ({"misfire_grace": "NaN"}, "misfire_grace", "out of range"),
        ({"misfire_grace": 1e12}, "misfire_grace", "out of range"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"job": {"type": "test_noop", "delay": "1h"}}, "job.delay", "unknown field"),
        ({"misfire_policy": "\ud800"}, "misfire_policy", ""),  # quoted back in the answer: no 500
        ({"job": {"type": "test_noop", "retry": {"\udfff": 1}}}, "job.retry.\udfff", "unknown field"),
    ],
)
def test_bad_schedules_are_refused_naming_the_field(
    admin_user: User, change: dict[str, Any], field: str, fragment: str
) -> None:
    body = json.dumps({**BODY, **change})  # ASCII JSON: the test client's own encoder refuses lone surrogates
    response = api(admin_user).post("/api/v1/schedules", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert field in details(response), details(response)
    assert fragment in " ".join(details(response)[field])
    assert not Schedule.objects.exists()


def test_a_duplicate_name_is_refused(admin_user: User) -> None:
    client = api(admin_user)
    assert client.post("/api/v1/schedules", BODY, format="json").status_code == 201
    again = client.post("/api/v1/schedules", BODY, format="json")
    assert again.status_code == 400 and "name" in details(again)


def test_pause_resume_and_trigger(admin_user: User, broker: Broker) -> None:
    client = api(admin_user)
    sid = client.post("/api/v1/schedules", BODY, format="json").json()["id"]

    paused = client.post(f"/api/v1/schedules/{sid}/pause")
    assert paused.status_code == 200 and paused.json()["paused"] is True and paused.json()["next_fire_at"] is None
    resumed = client.post(f"/api/v1/schedules/{sid}/resume")
    assert resumed.status_code == 200 and resumed.json()["enabled"] is True and resumed.json()["next_fire_at"]

    triggered = client.post(f"/api/v1/schedules/{sid}/trigger")
    assert triggered.status_code == 201, triggered.content
    job = Job.objects.get(pk=triggered.json()["job"]["id"])
    assert (job.type, job.queue, job.priority, job.status) == ("test_noop", "reports", 5, Status.PENDING)
    assert str(job.pk) in broker.ids("reports")["ready"]


def test_reading_needs_a_token_and_changes_need_permissions(reader: User) -> None:
    assert api(None).get("/api/v1/schedules").status_code == 401
    assert api(reader).get("/api/v1/schedules").status_code == 403
    reader.user_permissions.add(Permission.objects.get(codename="view_schedule"))
    reader = User.objects.get(pk=reader.pk)  # drop the permission cache
    client = api(reader)
    assert client.get("/api/v1/schedules").status_code == 200
    refused = client.post("/api/v1/schedules", BODY, format="json")
    assert refused.status_code == 403 and "scheduler.add_schedule" in refused.json()["error"]["message"]
    reader.user_permissions.add(Permission.objects.get(codename="add_schedule"))
    reader = User.objects.get(pk=reader.pk)  # drop the permission cache
    made = api(reader).post("/api/v1/schedules", BODY, format="json")
    assert made.status_code == 201, made.content
    sid = made.json()["id"]
    assert api(reader).post(f"/api/v1/schedules/{sid}/pause").status_code == 403
    assert api(reader).delete(f"/api/v1/schedules/{sid}").status_code == 403


# -- the admin --------------------------------------------------------------------------------------


def admin_form(**overrides: Any) -> dict[str, Any]:
    form = {
        "name": "admin-made",
        "description": "",
        "enabled": "on",
        "cron": "*/10 * * * *",
        "timezone": "UTC",
        "misfire_policy": "skip",
        "misfire_grace": "60",
        "job_type": "test_noop",
        "payload": "{}",
        "queue": "default",
        "priority": "0",
        "retry": "",
        "timeout": "",
    }
    form.update(overrides)
    return form


def test_admin_shows_a_bad_cron_on_its_field(admin_user: User) -> None:
    browser = Client()
    browser.force_login(admin_user)
    response = browser.post(
        "/admin/scheduler/schedule/add/", admin_form(cron="*/10 * * *", timezone="Atlantis/Capital")
    )
    assert response.status_code == 200  # the form again, with errors
    errors = response.context["adminform"].form.errors
    assert "cron" in errors or "timezone" in errors
    assert not Schedule.objects.exists()
    response = browser.post("/admin/scheduler/schedule/add/", admin_form(cron="*/10 * * *"))
    assert "has 4 fields" in response.context["adminform"].form.errors["cron"][0]
    response = browser.post("/admin/scheduler/schedule/add/", admin_form(timezone="Atlantis/Capital"))
    assert "not a known IANA time zone" in response.context["adminform"].form.errors["timezone"][0]
    response = browser.post("/admin/scheduler/schedule/add/", admin_form(job_type="nope"))
    assert "unknown job type" in response.context["adminform"].form.errors["job_type"][0]


def test_admin_creates_and_runs_actions(admin_user: User, broker: Broker) -> None:
    browser = Client()
    browser.force_login(admin_user)
    response = browser.post("/admin/scheduler/schedule/add/", admin_form())
    assert response.status_code == 302, response.content[:2000]
    schedule = Schedule.objects.get(name="admin-made")
    assert schedule.next_fire_at is not None and schedule.next_fire_at.minute % 10 == 0
    changelist = "/admin/scheduler/schedule/"
    browser.post(changelist, {"action": "pause_schedules", "_selected_action": [schedule.pk]})
    assert not Schedule.objects.get(pk=schedule.pk).enabled
    browser.post(changelist, {"action": "resume_schedules", "_selected_action": [schedule.pk]})
    assert Schedule.objects.get(pk=schedule.pk).enabled
    browser.post(changelist, {"action": "trigger_schedules", "_selected_action": [schedule.pk]})
    assert Job.objects.filter(idempotency_key__startswith=f"schedule:{schedule.pk}:trigger:").count() == 1
    assert browser.get(changelist).status_code == 200
    assert browser.get(f"{changelist}{schedule.pk}/change/").status_code == 200
