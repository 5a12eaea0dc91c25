"""Unique jobs: one job per key within its window, duplicates answered with it (Python and REST), exact
under concurrent submitters, released at start or finish, and the batch path."""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from jobs import client, expiry, states
from jobs.models import Job, Status, UniqueClaim
from jobs.unique_terms import default_unique_key
from jobs.validation import JobSpec
from tests.helpers import EMAIL_PAYLOAD, SEED_JOB, run_attempt, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

SUBMITTERS = 8
on_postgres = pytest.mark.skipif("connection.vendor != 'postgresql'", reason="concurrent writers need PostgreSQL")


def key() -> str:
    return f"report-{uuid.uuid4().hex[:8]}"


def unique(unique_key: str, **fields: Any) -> Job:
    return client.enqueue("test_noop", {"n": 1}, unique_for="10m", unique_key=unique_key, **fields)


# -- Python -----------------------------------------------------------------------------------------------


def test_a_duplicate_within_the_window_gets_the_first_job_flagged(broker: Any) -> None:
    k = key()
    first = unique(k)
    again = unique(k)
    assert first.duplicate is False and again.duplicate is True
    assert again.pk == first.pk and again.unique_key == k
    assert Job.objects.filter(unique_key=k).count() == 1


def test_the_default_key_is_type_queue_and_payload(broker: Any) -> None:
    first = client.enqueue("test_noop", {"a": 1, "b": 2}, unique_for="10m")
    reordered = client.enqueue("test_noop", {"b": 2, "a": 1}, unique_for="10m")
    other_payload = client.enqueue("test_noop", {"a": 1, "b": 3}, unique_for="10m")
    other_queue = client.enqueue("test_noop", {"a": 1, "b": 2}, unique_for="10m", queue="other")
    assert reordered.duplicate and reordered.pk == first.pk
    assert not other_payload.duplicate and not other_queue.duplicate
    assert first.unique_key == default_unique_key("test_noop", "default", {"a": 1, "b": 2})
    assert Job.objects.count() == 3


def test_a_job_without_unique_for_is_never_a_duplicate(broker: Any) -> None:
    first = client.enqueue("test_noop", {"n": 1})
    second = client.enqueue("test_noop", {"n": 1})
    assert first.pk != second.pk and not second.duplicate and first.unique_key is None


def test_until_finish_holds_while_running_and_frees_the_key_when_finished(broker: Any) -> None:
    k = key()
    first = unique(k)
    [claimed] = states.claim([str(first.pk)], "host:1:abc")
    assert unique(k).duplicate, "a running job still holds its key"
    now = timezone.now()
    states.record([states.AttemptResult(claimed, "completed", now, now, 0.1)])
    assert Job.objects.get(pk=first.pk).status == Status.COMPLETED
    second = unique(k)
    assert not second.duplicate and second.pk != first.pk
    assert unique(k).pk == second.pk, "the new job holds the key now"


@pytest.mark.parametrize("ending", [Status.CANCELLED, Status.EXPIRED, Status.FAILED])
def test_until_finish_frees_the_key_whatever_the_job_ends_as(broker: Any, ending: str) -> None:
    k = key()
    first = unique(k, expires_in="1m")
    if ending == Status.CANCELLED:
        client.cancel(first.pk)
    elif ending == Status.EXPIRED:
        states.expire(Job.objects.filter(pk=first.pk), timezone.now() + timedelta(minutes=2))
    else:
        run_attempt(first, "failed", error="boom", permanent=True)
    assert Job.objects.get(pk=first.pk).status == ending
    assert not unique(k).duplicate


def test_until_start_frees_the_key_once_the_job_started(broker: Any) -> None:
    k = key()
    first = unique(k, unique_until="start")
    assert unique(k, unique_until="start").duplicate, "not started yet: still unique"
    [claimed] = states.claim([str(first.pk)], "host:1:abc")
    assert claimed.status == Status.RUNNING
    second = unique(k, unique_until="start")
    assert not second.duplicate and second.pk != first.pk


def test_until_start_holds_again_for_a_job_handed_back_unstarted(broker: Any) -> None:
    k = key()
    first = unique(k, unique_until="start")
    [claimed] = states.claim([str(first.pk)], "host:1:abc")
    states.release([claimed])  # shutdown: handed back uncharged, as if never started
    assert unique(k, unique_until="start").pk == first.pk


def test_the_window_passes_on_a_driven_clock(broker: Any) -> None:
    k = key()
    t0 = timezone.now()
    spec = JobSpec("test_noop", {"n": 1}, unique_for="10m", unique_key=k)
    first, created = client.enqueue_idempotent(spec, now=t0)
    assert created
    inside, created = client.enqueue_idempotent(spec, now=t0 + timedelta(minutes=9, seconds=59))
    assert not created and inside.duplicate and inside.pk == first.pk
    after, created = client.enqueue_idempotent(spec, now=t0 + timedelta(minutes=10))
    assert created and not after.duplicate and after.pk != first.pk
    claim = UniqueClaim.objects.get(key=k)
    assert claim.job_id == after.pk and claim.expires_at == t0 + timedelta(minutes=20)


def test_the_expiry_sweep_purges_only_lapsed_claims(broker: Any) -> None:
    t0 = timezone.now()
    client.enqueue_idempotent(JobSpec("test_noop", {}, unique_for="1m", unique_key="short"), now=t0)
    client.enqueue_idempotent(JobSpec("test_noop", {}, unique_for="1h", unique_key="long"), now=t0)
    assert expiry.sweep(broker, 100, now=t0 + timedelta(minutes=2)).claims_purged == 1
    assert list(UniqueClaim.objects.values_list("key", flat=True)) == ["long"]


def test_a_claim_whose_job_was_deleted_holds_nothing(broker: Any) -> None:
    k = key()
    first = unique(k)
    Job.objects.filter(pk=first.pk).delete()
    second = unique(k)
    assert not second.duplicate and Job.objects.filter(pk=second.pk).exists()


# -- concurrency (PostgreSQL) -------------------------------------------------------------------------------


def in_threads(count: int, work: Callable[[], Job]) -> list[Job]:
    """Run ``work`` in ``count`` threads, each on its own database connection, released together."""
    start = threading.Barrier(count)
    results: list[Job] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            start.wait(10)
            results.append(work())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert len(results) == count, "a submitter did not finish"
    return results


@on_postgres
def test_eight_concurrent_submitters_make_exactly_one_job(broker: Any) -> None:
    for _ in range(5):
        k = key()
        results = in_threads(SUBMITTERS, lambda k=k: unique(k))  # type: ignore[misc]
        assert Job.objects.filter(unique_key=k).count() == 1
        assert len({job.pk for job in results}) == 1
        assert sorted(job.duplicate for job in results) == [False] + [True] * (SUBMITTERS - 1)


@on_postgres
def test_eight_concurrent_submitters_take_over_a_released_key_exactly_once(broker: Any) -> None:
    k = key()
    first = unique(k)
    run_attempt(first, "completed")
    results = in_threads(SUBMITTERS, lambda: unique(k))
    new = Job.objects.filter(unique_key=k).exclude(pk=first.pk)
    assert new.count() == 1 and {job.pk for job in results} == {new.get().pk}


@on_postgres
def test_concurrent_batches_with_crossed_keys_neither_deadlock_nor_duplicate(broker: Any) -> None:
    keys = [key() for _ in range(6)]

    def batch(order: list[str]) -> Callable[[], Job]:
        def submit() -> Job:
            specs = [JobSpec("test_noop", {}, unique_for="10m", unique_key=k) for k in order]
            return client.enqueue_many(specs)[0]

        return submit

    forward, backward = batch(keys), batch(keys[::-1])
    turns = itertools.count()
    lock = threading.Lock()

    def either() -> Job:
        with lock:
            turn = next(turns)
        return (forward if turn % 2 else backward)()

    results = in_threads(SUBMITTERS, either)
    assert len(results) == SUBMITTERS
    for k in keys:
        assert Job.objects.filter(unique_key=k).count() == 1, k


@on_postgres
def test_a_second_submitter_waits_for_the_first_to_commit_then_gets_its_job(broker: Any) -> None:
    k = key()
    claimed, release = threading.Event(), threading.Event()
    got: dict[str, Job] = {}

    def first() -> None:
        try:
            with transaction.atomic():
                got["first"] = unique(k)
                claimed.set()
                release.wait(10)
        finally:
            connection.close()

    def second() -> None:
        try:
            got["second"] = unique(k)
        finally:
            connection.close()

    one = threading.Thread(target=first)
    one.start()
    assert claimed.wait(10)
    two = threading.Thread(target=second)
    two.start()

    def second_is_waiting_on_a_lock() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            return bool(cursor.fetchone()[0])

    wait_for(second_is_waiting_on_a_lock, message="the second submitter to wait for the first's claim")
    assert "second" not in got
    release.set()
    one.join(10)
    two.join(10)
    assert got["second"].duplicate and got["second"].pk == got["first"].pk
    assert Job.objects.filter(unique_key=k).count() == 1


# -- batches ------------------------------------------------------------------------------------------------


def test_a_batch_with_duplicates_inside_and_against_a_stored_job(broker: Any) -> None:
    stored = unique("stored")
    specs = [
        JobSpec("test_noop", {"n": 1}, unique_for="10m", unique_key="fresh"),
        JobSpec("test_noop", {"n": 2}, unique_for="10m", unique_key="fresh"),
        JobSpec("test_noop", {"n": 3}, unique_for="10m", unique_key="stored"),
        JobSpec("test_noop", {"n": 4}),
        JobSpec("test_noop", {"n": 5}, unique_for="10m", unique_key="fresh"),
    ]
    jobs = client.enqueue_many(specs)
    assert [job.duplicate for job in jobs] == [False, True, True, False, True]
    assert jobs[1].pk == jobs[0].pk == jobs[4].pk and jobs[2].pk == stored.pk
    assert jobs[0].duplicate is False, "the batch's own job is not marked by its duplicates"
    assert Job.objects.count() == 3
    ready = broker.client.zrange(broker.keys("default").ready, 0, -1)
    assert sorted(r.decode() for r in ready) == sorted(str(j) for j in {stored.pk, jobs[0].pk, jobs[3].pk})


# -- REST ----------------------------------------------------------------------------------------------------


def post(api: APIClient, **fields: Any) -> Any:
    return api.post("/api/v1/jobs", {**SEED_JOB, **fields}, format="json")


def test_the_api_answers_a_duplicate_with_200_and_the_first_job(api: APIClient) -> None:
    first = post(api, unique_for="10m")
    again = post(api, unique_for="10m")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["duplicate"] is False and again.json()["duplicate"] is True
    assert again.json()["id"] == first.json()["id"]
    shown = api.get(f"/api/v1/jobs/{first.json()['id']}").json()
    assert "duplicate" not in shown, "the flag belongs to the submission's answer only"
    assert shown["unique_key"] == default_unique_key(str(SEED_JOB["type"]), str(SEED_JOB["queue"]), SEED_JOB["payload"])


def test_the_api_batch_marks_duplicates_and_answers_200_when_all_are(api: APIClient) -> None:
    job = {"type": "test_noop", "payload": {}, "unique_for": "10m", "unique_key": "nightly"}
    first = api.post("/api/v1/jobs/batch", {"jobs": [job, job]}, format="json")
    assert first.status_code == 201
    listed = first.json()["jobs"]
    assert [j["duplicate"] for j in listed] == [False, True] and listed[0]["id"] == listed[1]["id"]
    again = api.post("/api/v1/jobs/batch", {"jobs": [job]}, format="json")
    assert again.status_code == 200 and again.json()["jobs"] == [{**listed[0], "duplicate": True}]


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"unique_for": "30d"}, "unique_for", "not a duration"),
        ({"unique_for": "10000h"}, "unique_for", "longer than the retention"),
        ({"unique_for": "soon"}, "unique_for", "soon"),
        ({"unique_for": 0}, "unique_for", "above zero"),
        ({"unique_for": "1h", "unique_until": "later"}, "unique_until", "not one of start, finish"),
        ({"unique_for": "1h", "unique_key": "k" * 201}, "unique_key", "1 to 200"),
        ({"unique_for": "1h", "unique_key": ""}, "unique_key", "1 to 200"),
        ({"unique_key": "k"}, "unique_key", "needs unique_for"),
        ({"unique_until": "start"}, "unique_until", "needs unique_for"),
        ({"expires_at": "2020-01-01T00:00:00Z"}, "expires_at", "in the past"),
        ({"expires_at": "tomorrow"}, "expires_at", "RFC 3339"),
        ({"expires_at": "2099-01-01T00:00:00"}, "expires_at", "no time zone"),
        ({"expires_in": "1h", "expires_at": "2099-01-01T00:00:00Z"}, "expires_in", "not both"),
        ({"expires_in": -1}, "expires_in", "negative"),
        ({"expires_in": "0s"}, "expires_in", "above zero"),
    ],
)
def test_bad_flow_fields_are_a_400_naming_the_field(
    api: APIClient, fields: dict[str, Any], field: str, words: str
) -> None:
    response = post(api, **fields)
    assert response.status_code == 400, response.content
    details = response.json()["error"]["details"]
    assert list(details) == [field] and words in details[field][0], details
    assert Job.objects.count() == 0 and UniqueClaim.objects.count() == 0


def test_the_retention_named_is_the_shorter_one(api: APIClient) -> None:
    from tests.helpers import override_zipline

    with override_zipline(retention_failed=3600.0):
        response = post(api, unique_for="2h")
    assert response.status_code == 400
    assert "JQS_RETENTION_FAILED" in response.json()["error"]["details"]["unique_for"][0]
    assert post(api, unique_for="2h").status_code == 201


def test_python_names_the_field_too(broker: Any) -> None:
    with pytest.raises(client.InvalidJob) as caught:
        client.enqueue("send_email", EMAIL_PAYLOAD, unique_for="1h", unique_until="never")
    assert caught.value.field == "unique_until"
    with pytest.raises(client.InvalidJob) as in_batch:
        client.enqueue_many([JobSpec("test_noop", {}), JobSpec("test_noop", {}, expires_at="2001-01-01T00:00:00Z")])
    assert in_batch.value.field == "jobs[1].expires_at"
