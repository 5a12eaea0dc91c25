"""Idempotency keys as Stripe has them: the same request again returns the first job; a different
request with the same key is a 409 naming the key; and keys are scoped per user."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from jobs import client
from jobs.idempotency import IdempotencyConflict
from jobs.models import Job
from jobs.validation import JobSpec
from tests.helpers import SEED_JOB, token_client

pytestmark = pytest.mark.django_db(transaction=True)


def user_client() -> Any:
    return token_client(User.objects.create_user(f"user-{uuid.uuid4().hex[:8]}"))


def post(api: APIClient, **fields: Any) -> Any:
    return api.post("/api/v1/jobs", {**SEED_JOB, **fields}, format="json")


def test_the_same_request_again_returns_the_first_job(api: APIClient) -> None:
    first = post(api, idempotency_key="signup-42")
    again = post(api, idempotency_key="signup-42")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"] and again.json()["idempotency_key"] == "signup-42"
    assert Job.objects.count() == 1


@pytest.mark.parametrize(
    "change",
    [{"priority": 1}, {"payload": {**SEED_JOB["payload"], "subject": "Other"}}, {"queue": "other"}],  # type: ignore[dict-item]
)
def test_a_key_reused_for_a_different_request_is_a_409_naming_the_key(api: APIClient, change: dict[str, Any]) -> None:
    first = post(api, idempotency_key="signup-42").json()
    response = post(api, idempotency_key="signup-42", **change)
    assert response.status_code == 409, response.content
    error = response.json()["error"]
    message = f"'signup-42' was used for job {first['id']} with a different request; use a new key for a new job"
    assert error == {
        "code": "conflict",
        "message": f"idempotency_key: {message}",
        "details": {"idempotency_key": [message]},
    }
    assert Job.objects.count() == 1


def test_keys_are_scoped_per_user() -> None:
    alice, bob = user_client(), user_client()
    mine = post(alice, idempotency_key="order-1")
    theirs = post(bob, idempotency_key="order-1", priority=1)  # bob's first use: a new job, not alice's
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.json()["id"] != theirs.json()["id"] and theirs.json()["priority"] == 1
    assert post(alice, idempotency_key="order-1").json()["id"] == mine.json()["id"]
    assert post(bob, idempotency_key="order-1", priority=1).json()["id"] == theirs.json()["id"]
    # A batch is scoped the same way: bob reusing his key conflicts, carol's first use does not.
    batch = {"jobs": [{**SEED_JOB, "idempotency_key": "order-1"}]}
    refused = bob.post("/api/v1/jobs/batch", batch, format="json")
    assert refused.status_code == 409
    assert refused.json()["error"]["details"] == {
        "jobs[0].idempotency_key": [f"'order-1' is already job {theirs.json()['id']}'s"]
    }
    assert user_client().post("/api/v1/jobs/batch", batch, format="json").status_code == 201
    assert Job.objects.filter(idempotency_key="order-1").count() == 3


def test_the_python_api_has_its_own_scope_and_the_same_rule(broker: Any) -> None:
    over_rest = post(user_client(), idempotency_key="order-7").json()
    first, created = client.enqueue_idempotent(JobSpec("test_noop", {"n": 1}, idempotency_key="order-7"))
    again, created_again = client.enqueue_idempotent(JobSpec("test_noop", {"n": 1}, idempotency_key="order-7"))
    assert created and not created_again and again.pk == first.pk and str(first.pk) != over_rest["id"]
    with pytest.raises(IdempotencyConflict) as conflict:
        client.enqueue("test_noop", {"n": 2}, idempotency_key="order-7")
    assert conflict.value.field == "idempotency_key" and conflict.value.job.pk == first.pk
    assert Job.objects.count() == 2
