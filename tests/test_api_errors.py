"""Every error the API answers with, in its one shape: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.core.cache import cache
from django.test import override_settings
from rest_framework.settings import api_settings
from rest_framework.test import APIClient

from jobs import service
from jobs.broker import reset_broker
from jobs.models import Job
from jobs.tokens import create_token
from tests.helpers import override_zipline

pytestmark = pytest.mark.django_db(transaction=True)

GOOD = {"type": "send_email", "payload": {"email": "user@example.com", "subject": "Hi", "body": "."}}


def error_of(response: Any, status: int) -> dict[str, Any]:
    """The error object, after checking the status and that the body has exactly the one shape."""
    assert response.status_code == status, (response.status_code, response.content)
    assert response["Content-Type"].startswith("application/json")
    body = json.loads(response.content)
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert all(isinstance(v, list) and all(isinstance(m, str) for m in v) for v in body["error"]["details"].values())
    return body["error"]


def post_raw(
    api: APIClient, body: str | bytes, content_type: str = "application/json", path: str = "/api/v1/jobs"
) -> Any:
    return api.generic("POST", path, body, content_type=content_type)  # type: ignore[arg-type]  # bytes work too


# -- 400 ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        '{"type": "send_email"',
        "{bad json}",
        "NaN",
        '{"type": "send_email", "priority": Infinity}',
        b"\xff\xfe{",
        "[" * 5000 + "]" * 5000,
    ],
)
def test_malformed_json_is_400(api: APIClient, raw: str | bytes) -> None:
    error = error_of(post_raw(api, raw), 400)
    assert error["code"] == "malformed_json" and "body" in error["details"]


def test_json_nested_too_deeply_is_400(api: APIClient) -> None:
    payload: Any = {}
    for _ in range(150):
        payload = {"a": payload}
    error = error_of(post_raw(api, json.dumps({"type": "send_email", "payload": payload})), 400)
    assert error["code"] == "malformed_json" and "nested deeper" in error["message"]


@pytest.mark.parametrize(
    "fields, field, words",
    [
        ({"type": "no_such_type"}, "type", "unknown job type"),
        ({"type": ""}, "type", "is not a job type"),
        ({"type": None}, "type", "required"),
        ({"payload": None, "type": "send_email"}, "payload", "JSON object"),
        ({"payload": [1]}, "payload", "JSON object"),
        ({"payload": "text"}, "payload", "JSON object"),
        ({"priority": 101}, "priority", "out of range"),
        ({"priority": -101}, "priority", "out of range"),
        ({"priority": 1.5}, "priority", "whole number"),
        ({"priority": True}, "priority", "whole number"),
        ({"priority": 10**40}, "priority", "out of range"),
        ({"queue": "has space"}, "queue", "queue name"),
        ({"queue": "x" * 65}, "queue", "queue name"),
        ({"queue": ""}, "queue", "queue name"),
        ({"queue": "é"}, "queue", "queue name"),
        ({"queue": 5}, "queue", "queue name"),
        ({"retry": {"initial_delay": "5 minutes"}}, "retry.initial_delay", "not a duration"),
        ({"retry": {"max_delay": "-1s"}}, "retry.max_delay", "not a duration"),
        ({"retry": {"max_delay": -1}}, "retry.max_delay", "negative"),
        ({"retry": {"max_retries": -1}}, "retry.max_retries", "out of range"),
        ({"retry": {"backoff": "random"}}, "retry.backoff", "not one of"),
        ({"retry": {"jitter": "yes"}}, "retry.jitter", "true or false"),
        ({"retry": {"colour": 1}}, "retry.colour", "unknown field"),
        ({"retry": "3"}, "retry", "object"),
        ({"timeout": "soon"}, "timeout", "not a duration"),
        ({"timeout": 1e300}, "timeout", "out of range"),
        ({"timeout": 10**400}, "timeout", "out of range"),
        ({"delay": 10**400}, "delay", "out of range"),
        ({"retry": {"max_delay": 10**400}}, "retry.max_delay", "out of range"),
        ({"delay": "1h", "schedule_at": "2030-01-01T00:00:00Z"}, "delay", "not both"),
        ({"schedule_at": "next tuesday"}, "schedule_at", "RFC 3339"),
        ({"schedule_at": "2030-01-01T00:00:00"}, "schedule_at", "time zone"),
        ({"schedule_at": "2030-02-30T00:00:00Z"}, "schedule_at", "RFC 3339"),
        ({"schedule_at": 1700000000}, "schedule_at", "RFC 3339"),
        ({"schedule_at": "9999-12-31T23:59:59-23:59"}, "schedule_at", "out of range"),
        ({"name": "x" * 201}, "name", "at most"),
        ({"name": 5}, "name", "string"),
        ({"name": "a\x00b"}, "name", "NUL"),
        ({"payload": {"a": "\x00"}}, "payload", "NUL"),
        ({"payload": {"\x00": 1}}, "payload", "NUL"),
        ({"idempotency_key": ""}, "idempotency_key", "1 to 200"),
        ({"idempotency_key": "k\x00"}, "idempotency_key", "NUL"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"\ud800": 1}, "\ud800", "unknown field"),  # a lone surrogate quoted back: ASCII JSON, no 500
        ({"retry": {"\udfff": 1}}, "retry.\udfff", "unknown field"),
    ],
)
def test_each_invalid_field_is_400_naming_it(api: APIClient, fields: dict[str, Any], field: str, words: str) -> None:
    body = json.dumps({**GOOD, **fields})  # ASCII JSON: the test client's own encoder refuses lone surrogates
    error = error_of(api.post("/api/v1/jobs", body, content_type="application/json"), 400)
    assert error["code"] == "invalid"
    assert list(error["details"]) == [field], error
    assert words in error["details"][field][0] and error["message"].startswith(field)
    assert Job.objects.count() == 0


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ('"payload": {"a": ["\\ud800"]}', "payload"),
        ('"payload": {"\\udc00": 1}', "payload"),
        ('"name": "x\\ud800"', "name"),
        ('"idempotency_key": "k\\udfff"', "idempotency_key"),
    ],
)
def test_lone_surrogates_are_400_naming_the_field(api: APIClient, fields: str, field: str) -> None:
    """JSON can escape a lone surrogate (\\ud800); no database can store one, so it is refused up front."""
    error = error_of(post_raw(api, '{"type": "send_email", ' + fields + "}"), 400)
    assert list(error["details"]) == [field] and "lone surrogate" in error["details"][field][0]
    assert Job.objects.count() == 0


def test_escaped_surrogate_pairs_and_backslashes_are_stored(api: APIClient) -> None:
    body = (
        '{"type": "send_email", "payload": {"email": "a@example.com", "emoji": "\\ud83d\\ude00", "text": "\\\\ud800"}}'
    )
    response = post_raw(api, body)
    assert response.status_code == 201, response.content
    assert Job.objects.get().payload == {"email": "a@example.com", "emoji": "\U0001f600", "text": "\\ud800"}


@pytest.mark.parametrize("raw", ["[]", '"text"', "null", "42"])
def test_body_must_be_an_object(api: APIClient, raw: str) -> None:
    error = error_of(post_raw(api, raw), 400)
    assert error["details"] == {"body": [error["details"]["body"][0]]}


def test_empty_body_asks_for_a_type(api: APIClient) -> None:
    assert error_of(post_raw(api, ""), 400)["details"]["type"] == ["is required"]


@pytest.mark.parametrize(
    "job, field",
    [
        ({"type": "send_email", "name": "\x00"}, "jobs[1].name"),
        ({"type": "send_email", "payload": {"k": "\x00"}}, "jobs[1].payload"),
        ({"type": "send_email", "schedule_at": "9999-12-31T23:59:59-23:59"}, "jobs[1].schedule_at"),
    ],
)
def test_unstorable_values_in_a_batch_are_400(api: APIClient, job: dict[str, Any], field: str) -> None:
    error = error_of(api.post("/api/v1/jobs/batch", {"jobs": [GOOD, job]}, format="json"), 400)
    assert field in error["details"] and Job.objects.count() == 0


# -- 413 ----------------------------------------------------------------------------------------------------


def test_payload_over_the_limit_is_413(api: APIClient) -> None:
    with override_zipline(max_payload_bytes=100):
        error = error_of(api.post("/api/v1/jobs", {**GOOD, "payload": {"x": "y" * 200}}, format="json"), 413)
        assert error["code"] == "payload_too_large" and "payload" in error["details"]
        batch = {"jobs": [GOOD, {**GOOD, "payload": {"x": "y" * 200}}]}
        error = error_of(api.post("/api/v1/jobs/batch", batch, format="json"), 413)
        assert "jobs[1].payload" in error["details"]


def test_body_over_the_limit_is_413(api: APIClient) -> None:
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000):
        body = json.dumps({**GOOD, "name": "n" * 2000})
        error = error_of(post_raw(api, body), 413)
        assert error["code"] == "payload_too_large"
    assert Job.objects.count() == 0


def test_batch_body_limit_is_larger(api: APIClient) -> None:
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000):
        response = post_raw(api, json.dumps({"jobs": [GOOD] * 50}), path="/api/v1/jobs/batch")
        assert response.status_code == 201 and len(response.content) > 0


# -- 415, 404, 405 ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml", ""],
)
def test_wrong_content_type_is_415(api: APIClient, content_type: str) -> None:
    error = error_of(post_raw(api, '{"type": "send_email"}', content_type=content_type), 415)
    assert error["code"] == "unsupported_media_type"


def test_json_with_charset_is_fine(api: APIClient) -> None:
    assert post_raw(api, json.dumps(GOOD), content_type="application/json; charset=utf-8").status_code == 201


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/nothing",
        "/api/v1/jobs/x/y",
        "/api/v1/queues/bad name/stats",
        "/api/v1/queues/" + "q" * 65 + "/stats",
        "/api/v2/jobs",
    ],
)
def test_unknown_endpoint_is_a_json_404(api: APIClient, path: str) -> None:
    assert error_of(api.get(path), 404)["code"] == "not_found"


def test_non_api_404_stays_html(api: APIClient) -> None:
    response = api.get("/no-such-page")
    assert response.status_code == 404 and not response["Content-Type"].startswith("application/json")


@pytest.mark.parametrize(
    "method, path",
    [
        ("put", "/api/v1/jobs"),
        ("patch", f"/api/v1/jobs/{uuid.uuid4()}"),
        ("get", "/api/v1/jobs/batch"),
        ("delete", "/api/v1/stats"),
        ("get", "/api/v1/queues/q/pause"),
    ],
)
def test_wrong_method_is_405(api: APIClient, method: str, path: str) -> None:
    assert error_of(getattr(api, method)(path), 405)["code"] == "method_not_allowed"


def test_accept_header_never_gives_406(api: APIClient) -> None:
    response = api.get("/api/v1/stats", HTTP_ACCEPT="text/html")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/json")


# -- 429, 503, 500 ----------------------------------------------------------------------------------------------


def test_rate_limit_is_429_with_retry_after(api: APIClient) -> None:
    rates = {**api_settings.DEFAULT_THROTTLE_RATES, "stats": "2/min"}
    user = User.objects.create_user(f"limited-{uuid.uuid4().hex[:6]}")
    user.user_permissions.add(Permission.objects.get(codename="view_job"))
    limited = APIClient()
    limited.credentials(HTTP_AUTHORIZATION=f"Token {create_token(user)}")
    try:
        with override_settings(REST_FRAMEWORK={**_rest_framework(), "DEFAULT_THROTTLE_RATES": rates}):
            assert [limited.get("/api/v1/stats").status_code for _ in range(2)] == [200, 200]
            response = limited.get("/api/v1/workers/stats")
            error = error_of(response, 429)
            assert error["code"] == "throttled" and int(response["Retry-After"]) >= 1
            assert api.get("/api/v1/stats").status_code == 200  # another user has its own budget
    finally:
        cache.delete(f"throttle_stats_{user.pk}")


def _rest_framework() -> dict[str, Any]:
    from django.conf import settings

    return dict(settings.REST_FRAMEWORK)


def test_redis_down_is_503_for_stats(api: APIClient) -> None:
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        reset_broker()
        try:
            for path in ("/api/v1/stats", "/api/v1/queues/emails/stats", "/api/v1/workers/stats"):
                assert error_of(api.get(path), 503)["code"] == "unavailable"
            # Submitting still works: the row is the truth and the reconciler pushes it later.
            assert api.post("/api/v1/jobs", GOOD, format="json").status_code == 201
        finally:
            reset_broker()


def test_unexpected_error_is_a_json_500(api: APIClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(service, "system_stats", broken)
    error = error_of(api.get("/api/v1/stats"), 500)
    assert error["code"] == "server_error" and "bug" not in error["message"]
