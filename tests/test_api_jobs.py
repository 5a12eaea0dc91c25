"""The jobs endpoints through the whole Django stack: submit, read, list, batch, cancel, retry, delete."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from jobs import client
from jobs.models import Job, JobAttempt, Outcome, Status
from jobs.validation import InvalidJob
from tests.helpers import EMAIL_PAYLOAD, SEED_JOB

pytestmark = pytest.mark.django_db(transaction=True)

SEED = SEED_JOB


def submit(api: APIClient, **fields: Any) -> dict[str, Any]:
    response = api.post("/api/v1/jobs", {**SEED, **fields}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


# -- submit -----------------------------------------------------------------------------------------------


def test_submit_the_seed_example(api: APIClient, broker: Any) -> None:
    response = api.post("/api/v1/jobs", SEED, format="json")
    assert response.status_code == 201
    body = response.json()
    assert response["Location"] == f"/api/v1/jobs/{body['id']}"
    assert {k: body[k] for k in ("name", "type", "payload", "priority", "queue", "status", "attempts")} == {
        **{k: SEED[k] for k in ("name", "type", "payload", "priority", "queue")},
        "status": "pending",
        "attempts": 0,
    }
    assert body["max_retries"] == 3
    assert body["retry"] == {
        "max_retries": 3,
        "backoff": "exponential",
        "initial_delay": "1s",
        "max_delay": "1h",
        "jitter": True,
    }
    assert body["attempt_history"] == [] and body["result"] is None and body["timeout"] is None
    assert body["created_at"].endswith("Z")
    job = Job.objects.get(pk=body["id"])
    assert (job.queue, job.priority, job.initial_delay, job.max_delay) == ("emails", 10, 1.0, 3600.0)
    assert broker.ids("emails")["ready"] == {body["id"]}


def test_submit_costs_one_insert(api: APIClient) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    submit(api)  # the token is verified once, then remembered for a few seconds
    with CaptureQueriesContext(connection) as queries:
        submit(api)
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["INSERT"]


def test_submit_minimal_job_takes_defaults(api: APIClient) -> None:
    response = api.post("/api/v1/jobs", {"type": "test_noop"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert (body["queue"], body["priority"], body["payload"], body["name"]) == ("default", 0, {}, "")


def test_submit_scheduled_job(api: APIClient, broker: Any) -> None:
    when = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    body = submit(api, schedule_at=when.isoformat().replace("+00:00", "Z"), timeout="30s")
    assert body["status"] == "scheduled"
    assert body["schedule_at"] == when.isoformat().replace("+00:00", "Z")
    assert body["timeout"] == "30s"
    assert broker.ids("emails")["delayed"] == {body["id"]}


def test_submit_with_delay_and_numeric_durations(api: APIClient) -> None:
    body = submit(
        api, delay="5m", retry={"initial_delay": 90, "max_delay": 7200.5, "backoff": "linear", "jitter": False}
    )
    assert body["status"] == "scheduled"
    retry = {k: v for k, v in body["retry"].items() if k != "max_retries"}
    assert retry == {"backoff": "linear", "initial_delay": "1m30s", "max_delay": "2h0.5s", "jitter": False}


def test_past_schedule_at_runs_now(api: APIClient) -> None:
    body = submit(api, schedule_at="2020-01-01T00:00:00+02:00")
    assert body["status"] == "pending" and body["schedule_at"] is None


# -- read -------------------------------------------------------------------------------------------------


def test_get_job_with_its_attempts(api: APIClient) -> None:
    job_id = submit(api)["id"]
    now = timezone.now()
    JobAttempt.objects.create(
        job_id=job_id,
        number=1,
        started_at=now,
        finished_at=now,
        outcome=Outcome.FAILED,
        error="boom",
        worker="w1",
        duration=0.5,
    )
    Job.objects.filter(pk=job_id).update(attempts=1, status=Status.RETRYING, error="boom")
    response = api.get(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["attempts"], body["error"]) == ("retrying", 1, "boom")
    assert body["attempt_history"] == [
        {
            "number": 1,
            "outcome": "failed",
            "started_at": body["attempt_history"][0]["started_at"],
            "finished_at": body["attempt_history"][0]["finished_at"],
            "duration": 0.5,
            "worker": "w1",
            "error": "boom",
            "after_manual_retry": False,
        }
    ]


@pytest.mark.parametrize("job_id", [str(uuid.uuid4()), "not-a-uuid", "1234", "%20", "0" * 300])
def test_unknown_or_malformed_id_is_404(api: APIClient, job_id: str) -> None:
    for method, path in (("get", ""), ("post", "/cancel"), ("post", "/retry"), ("delete", "")):
        response = getattr(api, method)(f"/api/v1/jobs/{job_id}{path}")
        assert response.status_code == 404, (method, path, response.content)
        assert response.json()["error"]["code"] == "not_found"


# -- list -------------------------------------------------------------------------------------------------


def _make(n: int, **fields: Any) -> list[Job]:
    return [client.enqueue("send_email", {**EMAIL_PAYLOAD, "body": str(i)}, **fields) for i in range(n)]


def _walk(api: APIClient, url: str) -> list[list[str]]:
    pages = []
    while url:
        response = api.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        pages.append([j["id"] for j in body["results"]])
        url = body["next"]
    return pages


def test_list_newest_first_with_cursor_pages(api: APIClient) -> None:
    jobs = _make(7)
    pages = _walk(api, "/api/v1/jobs?limit=3")
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for p in pages for i in p] == [str(j.pk) for j in reversed(jobs)]
    first = api.get("/api/v1/jobs?limit=3").json()
    assert first["previous"] is None and "payload" not in first["results"][0]
    second = api.get(first["next"]).json()
    back = api.get(second["previous"]).json()
    assert [j["id"] for j in back["results"]] == [j["id"] for j in first["results"]]


def test_list_pages_through_a_batch_sharing_one_timestamp(api: APIClient) -> None:
    rows = client.enqueue_many(
        [{"type": "send_email", "payload": {**EMAIL_PAYLOAD, "body": str(i)}} for i in range(25)]
    )
    assert len({r.created_at for r in rows}) == 1
    pages = _walk(api, "/api/v1/jobs?limit=4")
    ids = [i for p in pages for i in p]
    assert sorted(ids) == sorted(str(r.pk) for r in rows) and len(ids) == len(set(ids)) == 25
    assert ids == sorted(ids)  # same created_at: ordered by id


def test_list_filters(api: APIClient) -> None:
    emails = _make(2, queue="emails")
    other = _make(1, queue="other")
    failed = _make(1, queue="other")[0]
    Job.objects.filter(pk=failed.pk).update(status=Status.FAILED)
    cancelled = client.cancel(other[0].pk)

    def ids(query: str) -> set[str]:
        response = api.get(f"/api/v1/jobs?{query}")
        assert response.status_code == 200, response.content
        return {j["id"] for j in response.json()["results"]}

    assert ids("queue=emails") == {str(j.pk) for j in emails}
    assert ids("status=failed") == {str(failed.pk)}
    assert (
        ids("status=failed,cancelled") == ids("status=failed&status=cancelled") == {str(failed.pk), str(cancelled.pk)}
    )
    assert ids("type=send_email&queue=other&status=pending") == set()
    assert ids("type=webhook") == set()
    later = timezone.now() + timedelta(minutes=1)
    Job.objects.filter(pk=emails[0].pk).update(created_at=later)
    stamp = (later - timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    assert ids(f"created_after={stamp}") == {str(emails[0].pk)}
    assert str(emails[0].pk) not in ids(f"created_before={stamp}")


@pytest.mark.parametrize(
    "query, field",
    [
        ("status=nope", "status"),
        ("queue=bad%20name", "queue"),
        ("created_after=yesterday", "created_after"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=x", "limit"),
        ("cursor=garbage", "cursor"),
        ("type=%00", "type"),
    ],
)
def test_list_refuses_bad_filters(api: APIClient, query: str, field: str) -> None:
    response = api.get(f"/api/v1/jobs?{query}")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and any(name.startswith(field) for name in error["details"]), error


def test_pages_carry_their_bare_cursors_for_generated_clients(api: APIClient) -> None:
    jobs = _make(5)
    pages, cursor = [], None
    while True:
        body = api.get("/api/v1/jobs", {"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        pages.append(body)
        cursor = body["next_cursor"]
        if cursor is None:
            assert body["next"] is None
            break
        assert f"cursor={cursor}" in body["next"]
    assert [j["id"] for page in pages for j in page["results"]] == [str(j.pk) for j in reversed(jobs)]
    assert pages[0]["previous_cursor"] is None and pages[1]["previous_cursor"] in pages[1]["previous"]
    back = api.get("/api/v1/jobs", {"limit": 2, "cursor": pages[2]["previous_cursor"]}).json()
    assert back["results"] == pages[1]["results"]


@pytest.mark.parametrize("token", ["n" + "0" * 46, "p" + "f" * 46, "n" + "0123456789abcdef" * 2 + "0" * 14])
def test_every_cursor_of_the_documented_form_is_read(api: APIClient, token: str) -> None:
    from jobs.api.pagination import CURSOR_PATTERN

    assert re.fullmatch(CURSOR_PATTERN.strip("^$"), token)
    assert api.get("/api/v1/jobs", {"cursor": token}).status_code == 200


@pytest.mark.parametrize("token", ["n" + "0" * 45, "N" + "0" * 46, "n" + "A" * 46, "n" + "0" * 46 + "\n", "garbage"])
def test_a_cursor_not_of_the_documented_form_is_refused_naming_it(api: APIClient, token: str) -> None:
    response = api.get("/api/v1/jobs", {"cursor": token})
    assert response.status_code == 400 and list(response.json()["error"]["details"]) == ["cursor"]


# -- batch ------------------------------------------------------------------------------------------------


def test_batch_submits_all(api: APIClient, broker: Any) -> None:
    jobs = [{**SEED, "name": f"n{i}"} for i in range(5)] + [
        {"type": "send_email", "payload": EMAIL_PAYLOAD, "queue": "later", "delay": "1h"}
    ]
    response = api.post("/api/v1/jobs/batch", {"jobs": jobs}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["count"] == 6 and [j["status"] for j in body["jobs"]] == ["pending"] * 5 + ["scheduled"]
    assert list(
        Job.objects.filter(pk__in=[j["id"] for j in body["jobs"][:5]]).order_by("name").values_list("name", flat=True)
    ) == [f"n{i}" for i in range(5)]
    assert broker.ids("emails")["ready"] == {j["id"] for j in body["jobs"][:5]}
    assert broker.ids("later")["delayed"] == {body["jobs"][5]["id"]}


def test_batch_is_all_or_none(api: APIClient, broker: Any) -> None:
    jobs = [SEED, {**SEED, "type": "nope"}, SEED]
    response = api.post("/api/v1/jobs/batch", {"jobs": jobs}, format="json")
    assert response.status_code == 400
    assert list(response.json()["error"]["details"]) == ["jobs[1].type"]
    assert Job.objects.count() == 0 and broker.ids("emails")["ready"] == set()


def test_batch_with_a_used_idempotency_key_is_a_conflict_naming_the_job(api: APIClient) -> None:
    first = submit(api, idempotency_key="k1")
    jobs = [
        SEED,
        {**SEED, "idempotency_key": "k1"},
        {**SEED, "idempotency_key": "k2"},
        {**SEED, "idempotency_key": "k2"},
    ]
    response = api.post("/api/v1/jobs/batch", {"jobs": jobs}, format="json")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "conflict" and "idempotency key" in error["message"]
    assert error["details"] == {
        "jobs[1].idempotency_key": [f"'k1' is already job {first['id']}'s"],
        "jobs[3].idempotency_key": ["'k2' is jobs[2]'s too"],
    }
    assert Job.objects.count() == 1


@pytest.mark.parametrize(
    "body, field",
    [
        ({"jobs": []}, "jobs"),
        ({"jobs": "x"}, "jobs"),
        ({}, "jobs"),
        ([SEED], "body"),
        ({"jobs": [SEED], "extra": 1}, "extra"),
        ({"jobs": [SEED, 3]}, "jobs[1]"),
        ({"jobs": [SEED, {**SEED, "colour": "red"}]}, "jobs[1].colour"),
        ({"jobs": [SEED, {**SEED, "priority": 101}]}, "jobs[1].priority"),
    ],
)
def test_batch_refuses_bad_bodies(api: APIClient, body: Any, field: str) -> None:
    response = api.post("/api/v1/jobs/batch", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["details"]


def test_batch_limit_is_1000(api: APIClient) -> None:
    small = {"type": "send_email", "payload": EMAIL_PAYLOAD}
    assert api.post("/api/v1/jobs/batch", {"jobs": [small] * 1001}, format="json").status_code == 400
    response = api.post("/api/v1/jobs/batch", {"jobs": [small] * 1000}, format="json")
    assert response.status_code == 201 and response.json()["count"] == 1000 == Job.objects.count()


# -- cancel, retry, delete ------------------------------------------------------------------------------------


def test_cancel_a_pending_job(api: APIClient, broker: Any) -> None:
    job_id = submit(api)["id"]
    response = api.post(f"/api/v1/jobs/{job_id}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled" and response.json()["completed_at"]
    assert broker.ids("emails")["ready"] == set()


def test_cancel_a_running_job_requests_it(api: APIClient) -> None:
    job_id = submit(api)["id"]
    Job.objects.filter(pk=job_id).update(status=Status.RUNNING, attempts=1, worker="w")
    body = api.post(f"/api/v1/jobs/{job_id}/cancel").json()
    assert body["status"] == "running" and body["cancel_requested"] is True


@pytest.mark.parametrize("status", [Status.COMPLETED, Status.FAILED, Status.CANCELLED])
def test_cancel_a_finished_job_is_409(api: APIClient, status: str) -> None:
    job_id = submit(api)["id"]
    Job.objects.filter(pk=job_id).update(status=status)
    response = api.post(f"/api/v1/jobs/{job_id}/cancel")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "invalid_state" and f"is {status}" in error["message"] and "cancelled" in error["message"]


def test_retry_a_failed_job(api: APIClient, broker: Any) -> None:
    job_id = submit(api)["id"]
    api.post(f"/api/v1/jobs/{job_id}/cancel")
    Job.objects.filter(pk=job_id).update(status=Status.FAILED, attempts=4, error="boom")
    response = api.post(f"/api/v1/jobs/{job_id}/retry")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["attempts"], response.json()["error"]) == ("pending", 0, "")
    assert broker.ids("emails")["ready"] == {job_id}


@pytest.mark.parametrize(
    "status", [Status.PENDING, Status.SCHEDULED, Status.RUNNING, Status.RETRYING, Status.COMPLETED]
)
def test_retry_other_states_is_409(api: APIClient, status: str) -> None:
    job_id = submit(api)["id"]
    Job.objects.filter(pk=job_id).update(status=status)
    response = api.post(f"/api/v1/jobs/{job_id}/retry")
    assert response.status_code == 409
    assert "only a failed or cancelled job can be retried" in response.json()["error"]["message"]


@pytest.mark.parametrize("status", [Status.COMPLETED, Status.FAILED, Status.CANCELLED])
def test_delete_a_finished_job(api: APIClient, status: str) -> None:
    job_id = submit(api)["id"]
    Job.objects.filter(pk=job_id).update(status=status)
    JobAttempt.objects.create(job_id=job_id, number=1, outcome=Outcome.COMPLETED)
    response = api.delete(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 204 and response.content == b""
    assert not Job.objects.filter(pk=job_id).exists() and not JobAttempt.objects.filter(job_id=job_id).exists()
    assert api.get(f"/api/v1/jobs/{job_id}").status_code == 404


@pytest.mark.parametrize("status", [Status.PENDING, Status.SCHEDULED, Status.RUNNING, Status.RETRYING])
def test_delete_an_unfinished_job_is_409(api: APIClient, status: str) -> None:
    job_id = submit(api)["id"]
    Job.objects.filter(pk=job_id).update(status=status)
    response = api.delete(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 409 and Job.objects.filter(pk=job_id).exists()


# -- the Python API and the REST API answer the same -------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"type": "nope"},
        {"type": "send_email", "priority": 101},
        {"type": "send_email", "priority": "high"},
        {"type": "send_email", "queue": "no spaces"},
        {"type": "send_email", "payload": [1, 2]},
        {"type": "send_email", "retry": {"initial_delay": "5 minutes"}},
        {"type": "send_email", "retry": {"max_delay": "1s", "initial_delay": "1m"}},
        {"type": "send_email", "schedule_at": "tomorrow"},
        {"type": "send_email", "timeout": "0s"},
    ],
)
def test_rest_and_python_give_the_same_answer(api: APIClient, fields: dict[str, Any]) -> None:
    job_type = fields.pop("type")
    with pytest.raises(InvalidJob) as raised:
        client.enqueue(job_type, **fields)
    response = api.post("/api/v1/jobs", {"type": job_type, **fields}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {raised.value.field: [raised.value.message]}
