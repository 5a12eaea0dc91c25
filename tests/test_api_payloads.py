"""Payloads are checked at submit by their processor's declared schema or validator (a 400 naming
``payload.<field>``), by the REST API, ``jobs.enqueue``, ``enqueue_many`` and schedules (API and admin)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from jobs import client
from jobs.models import Job
from jobs.registry import PayloadError, Registry, processor, registry
from jobs.validation import InvalidJob
from scheduler.models import Schedule

pytestmark = pytest.mark.django_db(transaction=True)

EMAIL = {"email": "user@example.com", "subject": "Welcome!", "body": "Thanks."}


def refused(api: APIClient, body: dict[str, Any]) -> dict[str, list[str]]:
    response = api.post("/api/v1/jobs", body, format="json")
    assert response.status_code == 400, response.content
    return response.json()["error"]["details"]


@pytest.mark.parametrize(
    "job_type, payload, field, message",
    [
        ("send_email", {**EMAIL, "subject": 42}, "payload.subject", "expected a string, not 42"),
        ("send_email", {**EMAIL, "body": ["x"]}, "payload.body", "expected a string, not ['x']"),
        ("send_email", {"subject": "s"}, "payload.email", "expected an email address, not None"),
        ("send_email", {"email": "nobody"}, "payload.email", "'nobody' is not a valid email address"),
        ("webhook", {"url": "ftp://example.com/"}, "payload.url", "scheme 'ftp' is not allowed; use http or https"),
        ("webhook", {"url": "https://example.com/", "method": "BREW"}, "payload.method", "expected one of"),
        ("process_data", {"data_size": 10}, "payload.operation", "expected one of transform"),
        ("process_data", {"data_size": 0, "operation": "sort"}, "payload.data_size", "expected a whole number"),
    ],
)
def test_built_in_types_refuse_a_bad_payload_at_submit(
    api: APIClient, job_type: str, payload: dict[str, Any], field: str, message: str
) -> None:
    details = refused(api, {"type": job_type, "payload": payload})
    assert list(details) == [field] and details[field][0].startswith(message), details
    with pytest.raises(InvalidJob) as info:
        client.enqueue(job_type, payload)
    assert info.value.field == field
    batch = api.post(
        "/api/v1/jobs/batch",
        {"jobs": [{"type": "send_email", "payload": EMAIL}, {"type": job_type, "payload": payload}]},
        format="json",
    )
    assert batch.status_code == 400 and list(batch.json()["error"]["details"]) == [f"jobs[1].{field}"]
    assert not Job.objects.exists()


def test_the_seeds_payloads_stay_valid(api: APIClient) -> None:
    assert (
        api.post(
            "/api/v1/jobs", {"type": "send_email", "payload": {"email": "test1@example.com"}}, format="json"
        ).status_code
        == 201
    )
    assert client.enqueue("send_email", EMAIL).status == "pending"
    assert client.enqueue("webhook", {"url": "https://example.com/hook", "data": {"a": 1}}).status == "pending"
    assert client.enqueue("process_data", {"data_size": 100, "operation": "sort"}).status == "pending"


@pytest.fixture
def typed() -> Iterator[str]:
    """A processor that declares a JSON Schema and a validator (unregistered after the test)."""

    def even(payload: dict[str, Any]) -> None:
        if payload.get("n", 0) % 2:
            raise PayloadError("n", f"{payload['n']} is odd")

    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "minimum": 0},
            "tags": {"type": "array", "items": {"type": "string"}},
            "target": {
                "type": "object",
                "properties": {"host": {"type": "string", "minLength": 1}},
                "required": ["host"],
            },
        },
        "required": ["n"],
        "additionalProperties": False,
    }
    processor("typed_job", payload_schema=schema, validate_payload=even)(lambda payload, ctx: payload)
    try:
        yield "typed_job"
    finally:
        registry.unregister("typed_job")


@pytest.mark.parametrize(
    "payload, field, message",
    [
        ({}, "payload.n", "'n' is a required property"),
        ({"n": "2"}, "payload.n", "'2' is not of type 'integer'"),
        ({"n": -2}, "payload.n", "-2 is less than the minimum of 0"),
        ({"n": 2, "tags": ["a", 3]}, "payload.tags[1]", "3 is not of type 'string'"),
        ({"n": 2, "target": {}}, "payload.target.host", "'host' is a required property"),
        ({"n": 2, "colour": "red"}, "payload.colour", "Additional properties are not allowed"),
        ({"n": 3}, "payload.n", "3 is odd"),
    ],
)
def test_a_processor_declares_its_payload_schema_and_validator(
    api: APIClient, typed: str, payload: dict[str, Any], field: str, message: str
) -> None:
    details = refused(api, {"type": typed, "payload": payload})
    assert list(details) == [field] and details[field][0].startswith(message), details
    with pytest.raises(InvalidJob) as info:
        client.enqueue(typed, payload)
    assert (info.value.field, info.value.message[: len(message)]) == (field, message)
    assert client.enqueue(typed, {"n": 4, "tags": ["a"], "target": {"host": "h"}}).status == "pending"


def test_a_payload_schema_that_is_not_json_schema_is_refused_at_registration() -> None:
    class Broken:
        name = "broken"
        payload_schema = {"type": "no-such-type"}

        def can_process(self, job_type: str) -> bool:
            return True

        def process(self, job: Any, ctx: Any) -> None:
            return None

    with pytest.raises(ValueError, match="payload_schema is not a valid JSON Schema"):
        Registry().register("broken", Broken())


def test_schedules_check_the_payload_in_the_api_and_the_admin_form(api: APIClient, admin_user: User) -> None:
    body = {"name": "nightly", "cron": "@daily", "job": {"type": "send_email", "payload": {**EMAIL, "subject": 1}}}
    response = api.post("/api/v1/schedules", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["details"] == {"job.payload.subject": ["expected a string, not 1"]}
    browser = Client()
    browser.force_login(admin_user)
    form = {
        "name": "admin-made", "description": "", "enabled": "on", "cron": "@daily", "timezone": "UTC",
        "misfire_policy": "skip", "misfire_grace": "60", "job_type": "send_email",
        "payload": '{"email": "user@example.com", "subject": 1}', "queue": "default", "priority": "0",
        "retry": "", "timeout": "",
    }  # fmt: skip
    page = browser.post("/admin/scheduler/schedule/add/", form)
    assert page.status_code == 200
    assert page.context["adminform"].form.errors["payload"] == ["expected a string, not 1"]
    assert not Schedule.objects.exists()


def test_the_schedule_example_in_the_docs_is_accepted(api: APIClient) -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "scheduler.md").read_text()
    example = next(b for b in re.findall(r"```json\n(.*?)```", text, flags=re.DOTALL) if "nightly-report" in b)
    response = api.post("/api/v1/schedules", json.loads(example), format="json")
    assert response.status_code == 201, response.content
