"""The OpenAPI schema is valid and complete, real responses conform to it, and the docs pages use local assets."""

from __future__ import annotations

import re
import time
from typing import Any

import jsonschema
import pytest
from django.contrib.staticfiles import finders
from django.urls import URLPattern, URLResolver
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

from jobs.api import urls as api_urls
from jobs.api.errors import ERROR_CODES
from jobs.broker import heartbeat
from jobs.models import Job, Status
from jobs.registry import registry
from tests.helpers import SEED_JOB

pytestmark = pytest.mark.django_db(transaction=True)

SEED = SEED_JOB


@pytest.fixture
def schema() -> dict[str, Any]:
    response = APIClient().get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def _nullable_to_jsonschema(node: Any) -> Any:
    """OpenAPI 3.0's ``nullable`` as JSON Schema (anyOf null), recursively."""
    if isinstance(node, list):
        return [_nullable_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable_to_jsonschema(v) for k, v in node.items() if k not in ("nullable", "example", "examples")}
    if node.get("nullable"):
        return {"anyOf": [out, {"type": "null"}]}
    return out


class Conformance:
    """Validates a response against the schema of its operation and status code."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.components = _nullable_to_jsonschema(schema["components"])
        self.seen: set[tuple[str, str, str]] = set()

    def check(self, template: str, method: str, response: Any) -> Any:
        operation = self.schema["paths"][template][method]
        status = str(response.status_code)
        assert status in operation["responses"], f"{method.upper()} {template} answered an undocumented {status}"
        self.seen.add((template, method, status))
        content = operation["responses"][status].get("content")
        if content is None:
            assert not response.content, response.content
            return None
        body = response.json()
        target = _nullable_to_jsonschema(content["application/json"]["schema"])
        jsonschema.Draft202012Validator({**target, "components": self.components}).validate(body)
        return body


def test_schema_is_valid_openapi(schema: dict[str, Any]) -> None:
    validate_schema(schema)
    assert schema["info"]["title"] == "ZipLine API" and schema["info"]["version"] == "0.1.0"
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["bearerAuth"]["description"],
    }


def _routes(patterns: list[Any], prefix: str) -> list[str]:
    out = []
    for p in patterns:
        if isinstance(p, URLResolver):
            out += _routes(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern):
            out.append(prefix + str(p.pattern))
    return out


def our_paths() -> set[str]:
    """The schema paths of this API's routes (other apps add their own under /api/v1/)."""
    return {re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", r) for r in _routes(api_urls.urlpatterns, "/api/v1/")} | {"/health"}


def test_every_route_is_documented(schema: dict[str, Any]) -> None:
    assert our_paths() <= set(schema["paths"]), our_paths() - set(schema["paths"])
    ours = our_paths()
    operations = [
        (path, method, op) for path, item in schema["paths"].items() if path in ours for method, op in item.items()
    ]
    # GET and PATCH /queues/{name} (limits) are the 15th and 16th; POST /workflows and GET /workflows/{id};
    # POST /batches, GET /batches/{id}, POST /batches/{id}/close and /cancel
    assert len(operations) == 22
    for path, method, op in operations:
        assert op["operationId"] and op["summary"] and op["tags"], (path, method)
        if path != "/health":
            assert op["security"] == [{"bearerAuth": []}]
            for status in ("401", "429", "503"):
                assert status in op["responses"], (path, method, status)
        for status, response in op["responses"].items():
            if status.startswith(("4", "5")) and path != "/health":
                assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
                assert response["content"]["application/json"]["examples"], (path, method, status)
                assert response["description"]
    assert set(schema["paths"]["/api/v1/jobs"]["post"]["responses"]) >= {"200", "201", "400", "413", "415"}
    assert set(schema["paths"]["/api/v1/jobs/{job_id}/cancel"]["post"]["responses"]) >= {"200", "403", "404", "409"}


def test_schedule_operations_are_documented_with_their_errors(schema: dict[str, Any]) -> None:
    operations = {
        op["operationId"]: (path, set(op["responses"]), op["tags"])
        for path, item in schema["paths"].items()
        if path.startswith("/api/v1/schedules")
        for op in item.values()
    }
    assert set(operations) == {
        "list_schedules", "create_schedule", "get_schedule", "replace_schedule", "update_schedule",
        "delete_schedule", "pause_schedule", "resume_schedule", "trigger_schedule",
    }  # fmt: skip
    for operation_id, (path, statuses, tags) in operations.items():
        assert tags == ["schedules"] and {"401", "429", "503"} <= statuses, operation_id
        if "{id}" in path:
            assert "404" in statuses, operation_id
        if operation_id not in ("list_schedules", "get_schedule"):
            assert "403" in statuses, operation_id
    for operation_id in ("create_schedule", "replace_schedule", "update_schedule", "trigger_schedule"):
        assert "400" in operations[operation_id][1], operation_id
    components = schema["components"]["schemas"]
    assert components["Schedule"]["properties"]["cron"]["minLength"] == 1
    assert components["JobTemplate"]["properties"]["type"]["minLength"] == 1
    assert components["JobSubmit"]["properties"]["type"]["minLength"] == 1
    assert components["JobSubmit"]["properties"]["type"]["enum"] == registry.types()
    assert {"send_email", "webhook", "process_data"} <= set(components["JobTemplate"]["properties"]["type"]["enum"])
    assert components["RetryPolicyInput"]["properties"]["jitter"]["nullable"] is True
    assert all(components[name]["additionalProperties"] is False for name in ("JobSubmit", "Schedule", "JobTemplate"))


def test_an_empty_type_is_a_wrong_value_not_a_missing_one(api: APIClient) -> None:
    empty = api.post("/api/v1/jobs", {"type": ""}, format="json").json()["error"]["details"]
    assert empty == {"type": ["'' is not a job type: give a registered type's name"]}
    assert api.post("/api/v1/jobs", {}, format="json").json()["error"]["details"] == {"type": ["is required"]}
    blank_cron = {"name": "n", "cron": "", "job": {"type": "test_noop"}}
    answer = api.post("/api/v1/schedules", blank_cron, format="json").json()["error"]["details"]
    assert answer == {"cron": ["This field may not be blank."]}


@pytest.mark.parametrize("query", ["type=", "queue=", "limit=", "created_after=", "status=", "status=failed,"])
def test_an_empty_query_value_is_refused_not_ignored(api: APIClient, query: str) -> None:
    response = api.get(f"/api/v1/jobs?{query}")
    assert response.status_code == 400, (query, response.content)
    assert list(response.json()["error"]["details"])[0].startswith(query.split("=")[0])


def test_examples_come_from_the_seed_and_conform(schema: dict[str, Any]) -> None:
    components = _nullable_to_jsonschema(schema["components"])
    submit = schema["paths"]["/api/v1/jobs"]["post"]
    examples = submit["requestBody"]["content"]["application/json"]["examples"]
    assert SEED in [e["value"] for e in examples.values()]
    for path, item in schema["paths"].items():
        if path not in our_paths():
            continue
        for method, op in item.items():
            for status, response in op["responses"].items():
                media = (response.get("content") or {}).get("application/json")
                if not media:
                    continue
                for example in (media.get("examples") or {}).values():
                    target = _nullable_to_jsonschema(media["schema"])
                    jsonschema.Draft202012Validator({**target, "components": components}).validate(example["value"])
                    if status.startswith("4") and path != "/health":
                        assert example["value"]["error"]["code"] in ERROR_CODES[int(status)], (path, method, status)


def test_links_connect_submit_to_the_job_operations(schema: dict[str, Any]) -> None:
    links = schema["paths"]["/api/v1/jobs"]["post"]["responses"]["201"]["links"]
    assert {link["operationId"] for link in links.values()} == {"get_job", "cancel_job", "retry_job", "delete_job"}
    assert all(link["parameters"] == {"job_id": "$response.body#/id"} for link in links.values())


def test_real_responses_conform_to_the_schema(schema: dict[str, Any], api: APIClient, broker: Any) -> None:
    c = Conformance(schema)
    job = c.check("/api/v1/jobs", "post", api.post("/api/v1/jobs", SEED, format="json"))
    c.check("/api/v1/jobs", "post", api.post("/api/v1/jobs", {**SEED, "idempotency_key": "k"}, format="json"))
    c.check("/api/v1/jobs", "post", api.post("/api/v1/jobs", {**SEED, "idempotency_key": "k"}, format="json"))
    c.check("/api/v1/jobs", "post", api.post("/api/v1/jobs", {**SEED, "delay": "1h", "timeout": 30}, format="json"))
    c.check("/api/v1/jobs", "post", api.post("/api/v1/jobs", {"type": "nope"}, format="json"))
    c.check("/api/v1/jobs", "post", api.generic("POST", "/api/v1/jobs", "x", content_type="text/plain"))
    c.check("/api/v1/jobs", "get", api.get("/api/v1/jobs?limit=1"))
    c.check("/api/v1/jobs", "get", api.get("/api/v1/jobs?status=bogus"))
    c.check("/api/v1/jobs/batch", "post", api.post("/api/v1/jobs/batch", {"jobs": [SEED, SEED]}, format="json"))
    c.check("/api/v1/jobs/{job_id}", "get", api.get(f"/api/v1/jobs/{job['id']}"))
    c.check("/api/v1/jobs/{job_id}", "get", api.get("/api/v1/jobs/nope"))
    c.check("/api/v1/jobs/{job_id}/cancel", "post", api.post(f"/api/v1/jobs/{job['id']}/cancel"))
    c.check("/api/v1/jobs/{job_id}/cancel", "post", api.post(f"/api/v1/jobs/{job['id']}/cancel"))
    Job.objects.filter(pk=job["id"]).update(status=Status.FAILED, result={"any": ["json"]}, error="boom")
    c.check("/api/v1/jobs/{job_id}", "get", api.get(f"/api/v1/jobs/{job['id']}"))
    c.check("/api/v1/jobs/{job_id}/retry", "post", api.post(f"/api/v1/jobs/{job['id']}/retry"))
    c.check("/api/v1/jobs/{job_id}/retry", "post", api.post(f"/api/v1/jobs/{job['id']}/retry"))
    c.check("/api/v1/jobs/{job_id}", "delete", api.delete(f"/api/v1/jobs/{job['id']}"))
    Job.objects.filter(pk=job["id"]).update(status=Status.COMPLETED)
    c.check("/api/v1/jobs/{job_id}", "delete", api.delete(f"/api/v1/jobs/{job['id']}"))
    heartbeat.publish(
        broker,
        "w1",
        {"hostname": "h", "pid": 7, "queues": "emails", "concurrency": 2, "busy": 1, "started_at": time.time()},
    )
    c.check("/api/v1/queues/{queue_name}/stats", "get", api.get("/api/v1/queues/emails/stats"))
    c.check("/api/v1/queues/{queue_name}/pause", "post", api.post("/api/v1/queues/emails/pause"))
    c.check("/api/v1/queues/{queue_name}/resume", "post", api.post("/api/v1/queues/emails/resume"))
    c.check("/api/v1/stats", "get", api.get("/api/v1/stats"))
    c.check("/api/v1/workers/stats", "get", api.get("/api/v1/workers/stats"))
    c.check("/health", "get", APIClient().get("/health"))
    c.check("/api/v1/stats", "get", APIClient().get("/api/v1/stats"))
    assert {("/api/v1/jobs", "post", s) for s in ("200", "201", "400", "415")} <= c.seen
    assert {("/api/v1/jobs/{job_id}/cancel", "post", s) for s in ("200", "409")} <= c.seen


ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_docs_pages_use_only_local_assets(path: str) -> None:
    response = APIClient().get(path)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assets = ASSET.findall(html)
    assert assets, html
    served_by_views = {"/api/docs/?script=", "/api/redoc/redoc.standalone.js"}  # Swagger UI's start, ReDoc
    for url in assets:
        if url in served_by_views:
            assert APIClient().get(url).status_code == 200, url
            continue
        assert url.startswith("/static/"), url
        assert finders.find(url.removeprefix("/static/").split("?")[0]), f"{url} is not a static file"
    assert "https://" not in html and "http://" not in html and "cdn" not in html.lower()
    start = APIClient().get("/api/docs/?script=").content.decode() if path == "/api/docs/" else html
    assert "/api/schema/" in start
