"""The service's own promises, beyond what the API, admin and dashboard tests show through it: errors
that name the value, a batch's reused keys named per job, one deletion that also clears Redis, and ids
of any UUID version."""

from __future__ import annotations

import uuid

import pytest
from django.db import IntegrityError

from jobs import service
from jobs.broker import Broker
from jobs.ids import id_prefix_range, parse_job_id
from jobs.models import Job, Status
from jobs.validation import JobSpec

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_unknown_or_malformed_id_is_job_not_found_naming_it(broker: Broker) -> None:
    missing = uuid.uuid4()
    with pytest.raises(service.JobNotFound, match=f"^no job {missing}$"):
        service.get_job(str(missing))
    with pytest.raises(service.JobNotFound, match=r"^no job 'nope'$"):
        service.cancel("nope")
    with pytest.raises(Job.DoesNotExist):  # what the Python API always raised
        service.retry(missing)
    assert service.find_job("nope") is None


def test_a_batch_reusing_keys_names_each_job_and_writes_nothing(broker: Broker) -> None:
    service.submit(JobSpec("test_noop", idempotency_key="stored"))
    specs = [
        JobSpec("test_noop", idempotency_key="a"),
        JobSpec("test_noop", idempotency_key="a"),
        JobSpec("test_noop", idempotency_key="stored"),
    ]
    with pytest.raises(service.KeysReused) as raised:
        service.submit_many(specs)
    assert isinstance(raised.value, IntegrityError)
    assert set(raised.value.details) == {"jobs[1].idempotency_key", "jobs[2].idempotency_key"}
    assert Job.objects.count() == 1


def test_delete_jobs_removes_the_rows_and_their_ids_in_redis(broker: Broker) -> None:
    waiting = service.submit(JobSpec("test_noop", queue="gone"))[0]
    later = service.submit(JobSpec("test_noop", queue="gone", delay=3600))[0]
    assert broker.ids("gone") == {"ready": {str(waiting.pk)}, "delayed": {str(later.pk)}, "leases": set()}
    deleted = service.delete_jobs(Job.objects.filter(queue="gone"))
    assert {job.pk for job in deleted} == {waiting.pk, later.pk}
    assert not Job.objects.filter(queue="gone").exists()
    assert broker.ids("gone") == {"ready": set(), "delayed": set(), "leases": set()}


def test_delete_finished_refuses_a_waiting_job(broker: Broker) -> None:
    job = service.submit(JobSpec("test_noop"))[0]
    with pytest.raises(
        service.TransitionError, match=r"only a finished job \(completed, failed, cancelled or expired\) can be deleted"
    ):
        service.delete_finished(job.pk)
    service.cancel(job.pk)
    service.delete_finished(str(job.pk))
    assert not Job.objects.filter(pk=job.pk).exists()


def test_apply_each_reports_each_refusal_with_its_reason(broker: Broker) -> None:
    job = service.submit(JobSpec("test_noop"))[0]
    gone = uuid.uuid4()
    outcome = service.apply_each("retry", [job.pk, gone])
    assert outcome.changed == []
    assert outcome.refused == [(job.pk, Status.PENDING), (gone, "deleted")]


def test_ids_of_any_version_and_form_are_read_and_garbage_is_not() -> None:
    time_ordered = uuid.UUID("018f3c1e-7b2a-7c3d-8e4f-5a6b7c8d9e0f")  # a version 7 id
    assert parse_job_id(str(time_ordered)) == time_ordered
    assert parse_job_id(time_ordered.hex) == time_ordered
    assert parse_job_id(uuid.uuid1()) is not None
    assert [parse_job_id(bad) for bad in ("", "nope", None, 42, "018f3c1e")] == [None] * 5
    assert id_prefix_range("018F-3c1e") == (
        uuid.UUID("018f3c1e-0000-0000-0000-000000000000"),
        uuid.UUID("018f3c1e-ffff-ffff-ffff-ffffffffffff"),
    )
    assert id_prefix_range("018") is None
