"""The gRPC API on a real port with a real client: every method, the same answers as REST, and the errors.

The server runs in this process (tests/grpc_support.py); its calls go over HTTP/2 on 127.0.0.1.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from jobs.models import Job, Status
from tests.grpc_support import GrpcServer, call_error, grpc_server, new_user, pb, stub_for, violations
from tests.helpers import token_client

pytestmark = pytest.mark.django_db(transaction=True)
__all__ = ["grpc_server"]  # the fixture, imported for the tests below

EMAIL = {"type": "send_email", "payload": json.dumps({"email": "user@example.com", "subject": "Hi"})}


def spec(**fields: object) -> pb.JobSpec:
    return pb.JobSpec(**{**EMAIL, **fields})  # type: ignore[arg-type]


def test_submit_get_and_the_rest_api_agree(grpc_server: GrpcServer) -> None:
    admin = new_user(superuser=True)
    stub = stub_for(grpc_server, admin)
    answer = stub.SubmitJob(
        pb.SubmitJobRequest(job=spec(name="welcome", priority=5, queue="mail", retry=pb.RetryPolicy(max_retries=2)))
    )
    assert answer.created and not answer.duplicate
    job = answer.job
    assert (job.status, job.name, job.priority, job.queue, job.retry.max_retries) == (
        "pending",
        "welcome",
        5,
        "mail",
        2,
    )
    assert json.loads(job.payload) == {"email": "user@example.com", "subject": "Hi"}
    assert Job.objects.get(pk=job.id).submitted_by == admin
    fetched = stub.GetJob(pb.GetJobRequest(id=job.id))
    rest = token_client(admin).get(f"/api/v1/jobs/{job.id}").json()
    assert fetched.id == rest["id"] == job.id
    for field in ("status", "name", "type", "queue", "priority", "attempts", "max_retries", "worker", "traceback"):
        assert getattr(fetched, field) == rest[field], field
    assert json.loads(fetched.payload) == rest["payload"]
    assert fetched.retry.initial_delay == rest["retry"]["initial_delay"]
    assert fetched.created_at.ToDatetime(tzinfo=UTC) == datetime.fromisoformat(rest["created_at"])


def test_an_idempotency_key_answers_the_first_job(grpc_server: GrpcServer) -> None:
    stub = stub_for(grpc_server, new_user())
    first = stub.SubmitJob(pb.SubmitJobRequest(job=spec(idempotency_key="k-1")))
    again = stub.SubmitJob(pb.SubmitJobRequest(job=spec(idempotency_key="k-1")))
    assert first.created and not again.created and again.job.id == first.job.id
    other = call_error(stub.SubmitJob, pb.SubmitJobRequest(job=spec(idempotency_key="k-1", priority=9)))
    assert other.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "idempotency_key" in violations(other)


def test_submit_jobs_then_list_them_page_by_page(grpc_server: GrpcServer) -> None:
    stub = stub_for(grpc_server, new_user(superuser=True))
    answer = stub.SubmitJobs(pb.SubmitJobsRequest(jobs=[spec(queue="paged", name=f"j{i}") for i in range(5)]))
    assert answer.count == 5 and all(j.status == "pending" and not j.duplicate for j in answer.jobs)
    first = stub.ListJobs(pb.ListJobsRequest(queue="paged", limit=3))
    assert len(first.jobs) == 3 and first.HasField("next_cursor") and not first.HasField("previous_cursor")
    second = stub.ListJobs(pb.ListJobsRequest(queue="paged", limit=3, cursor=first.next_cursor))
    assert len(second.jobs) == 2 and not second.HasField("next_cursor")
    assert {j.id for j in first.jobs} | {j.id for j in second.jobs} == {j.id for j in answer.jobs}
    assert not first.jobs[0].HasField("payload")  # a list's entries are summaries
    pending = stub.ListJobs(pb.ListJobsRequest(status=["pending"], queue="paged", type="send_email"))
    assert len(pending.jobs) == 5
    assert not stub.ListJobs(pb.ListJobsRequest(status=["completed"], queue="paged")).jobs
    later = Timestamp()
    later.FromDatetime(datetime.now(UTC) + timedelta(minutes=1))
    assert not stub.ListJobs(pb.ListJobsRequest(queue="paged", created_after=later)).jobs
    assert len(stub.ListJobs(pb.ListJobsRequest(queue="paged", created_before=later)).jobs) == 5


def test_cancel_and_retry_and_the_states_that_refuse_them(grpc_server: GrpcServer) -> None:
    stub = stub_for(grpc_server, new_user(superuser=True))
    job = stub.SubmitJob(pb.SubmitJobRequest(job=spec())).job
    assert stub.CancelJob(pb.CancelJobRequest(id=job.id)).status == "cancelled"
    again = call_error(stub.CancelJob, pb.CancelJobRequest(id=job.id))
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION and "cancelled" in again.details()
    assert stub.RetryJob(pb.RetryJobRequest(id=job.id)).status == "pending"
    refused = call_error(stub.RetryJob, pb.RetryJobRequest(id=job.id))
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert Job.objects.get(pk=job.id).status == Status.PENDING


def test_a_job_nobody_has_is_not_found(grpc_server: GrpcServer) -> None:
    stub = stub_for(grpc_server, new_user(superuser=True))
    missing = "0b6c2b7e-2d0b-4a8e-9a51-3c1f2d9e8a77"
    for call, request in (
        (stub.GetJob, pb.GetJobRequest(id=missing)),
        (stub.CancelJob, pb.CancelJobRequest(id=missing)),
        (stub.RetryJob, pb.RetryJobRequest(id=missing)),
    ):
        error = call_error(call, request)
        assert error.code() == grpc.StatusCode.NOT_FOUND and missing in error.details()


def test_statistics(grpc_server: GrpcServer) -> None:
    stub = stub_for(grpc_server, new_user(superuser=True))
    stub.SubmitJobs(pb.SubmitJobsRequest(jobs=[spec(queue="counted")] * 3))
    queue = stub.GetQueueStats(pb.GetQueueStatsRequest(queue="counted"))
    assert (queue.name, queue.counts.pending, queue.total, queue.paused) == ("counted", 3, 3, False)
    assert queue.throughput.window_seconds == 60
    system = stub.GetSystemStats(pb.GetSystemStatsRequest())
    assert system.counts.pending >= 3 and "counted" in {q.name for q in system.queues} and system.version
    workers = stub.GetWorkerStats(pb.GetWorkerStatsRequest())
    assert (len(workers.workers), workers.totals.count) == (0, 0)  # none runs in this test


@pytest.mark.parametrize(
    ("job", "field"),
    [
        (pb.JobSpec(payload="{}"), "type"),
        (spec(type="no_such_type"), "type"),
        (spec(priority=500), "priority"),
        (spec(payload="{not json"), "payload"),
        (spec(payload="[1, 2]"), "payload"),
        (spec(queue="no spaces"), "queue"),
        (spec(delay="soon"), "delay"),
        (spec(retry=pb.RetryPolicy(backoff="sideways")), "retry.backoff"),
    ],
)
def test_submit_job_refuses_bad_input_naming_the_field(grpc_server: GrpcServer, job: pb.JobSpec, field: str) -> None:
    stub = stub_for(grpc_server, new_user())
    error = call_error(stub.SubmitJob, pb.SubmitJobRequest(job=job))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
    assert field in violations(error) and error.details().startswith(field)
    assert not Job.objects.exists()


def test_submit_jobs_refuses_a_bad_batch_whole(grpc_server: GrpcServer) -> None:
    stub = stub_for(grpc_server, new_user())
    empty = call_error(stub.SubmitJobs, pb.SubmitJobsRequest())
    assert empty.code() == grpc.StatusCode.INVALID_ARGUMENT and "jobs" in violations(empty)
    bad = call_error(stub.SubmitJobs, pb.SubmitJobsRequest(jobs=[spec(), spec(priority=-101)]))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT and "jobs[1].priority" in violations(bad)
    bad_json = call_error(stub.SubmitJobs, pb.SubmitJobsRequest(jobs=[spec(), spec(payload="nope")]))
    assert "jobs[1].payload" in violations(bad_json)
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.ListJobsRequest(status=["pending", "sleeping"]), "status[1]"),
        (pb.ListJobsRequest(limit=0), "limit"),
        (pb.ListJobsRequest(limit=501), "limit"),
        (pb.ListJobsRequest(cursor="not-a-cursor"), "cursor"),
        (pb.ListJobsRequest(queue="bad name"), "queue"),
        (pb.ListJobsRequest(type="a\x00b"), "type"),
    ],
)
def test_list_jobs_refuses_bad_filters(grpc_server: GrpcServer, request_: pb.ListJobsRequest, field: str) -> None:
    error = call_error(stub_for(grpc_server, new_user(superuser=True)).ListJobs, request_)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and field in violations(error), violations(error)


def test_methods_on_one_job_refuse_what_is_no_id(grpc_server: GrpcServer) -> None:
    stub = stub_for(grpc_server, new_user(superuser=True))
    for call, request in (
        (stub.GetJob, pb.GetJobRequest(id="nope")),
        (stub.CancelJob, pb.CancelJobRequest(id="")),
        (stub.RetryJob, pb.RetryJobRequest(id="12345")),
    ):
        error = call_error(call, request)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "id" in violations(error)
    stream = stub.WatchJob(pb.WatchJobRequest(id="nope"))
    error = call_error(list, stream)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "id" in violations(error)


def test_queue_stats_refuses_a_bad_queue_name(grpc_server: GrpcServer) -> None:
    stub = stub_for(grpc_server, new_user(superuser=True))
    for name in ("", "bad name", "x" * 65):
        error = call_error(stub.GetQueueStats, pb.GetQueueStatsRequest(queue=name))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "queue" in violations(error)


def test_with_redis_down_submits_commit_and_statistics_are_unavailable(grpc_server: GrpcServer) -> None:
    from django.test import override_settings

    from jobs.broker import reset_broker

    stub = stub_for(grpc_server, new_user(superuser=True))
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        reset_broker()
        try:
            answer = stub.SubmitJob(pb.SubmitJobRequest(job=spec()))  # REST's 201: the row is the truth
            stats = call_error(stub.GetQueueStats, pb.GetQueueStatsRequest(queue="default"))
        finally:
            reset_broker()
    assert answer.created and Job.objects.filter(pk=answer.job.id, status=Status.PENDING).exists()
    assert stats.code() == grpc.StatusCode.UNAVAILABLE and "Redis" in stats.details()


def test_a_bug_is_internal_and_logged_without_its_details(
    grpc_server: GrpcServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from jobs import service

    def broken(job_id: object) -> Job:
        raise RuntimeError("secret detail of a bug")

    stub = stub_for(grpc_server, new_user(superuser=True))
    job = stub.SubmitJob(pb.SubmitJobRequest(job=spec())).job
    monkeypatch.setattr(service, "get_job", broken)  # a bug injected where the servicer calls the service
    with caplog.at_level("ERROR", "zipline.api"):
        error = call_error(stub.GetJob, pb.GetJobRequest(id=job.id))
    assert error.code() == grpc.StatusCode.INTERNAL and "secret" not in error.details()
    assert any("secret detail of a bug" in str(r.exc_info) for r in caplog.records)


def test_a_job_read_over_grpc_shows_its_ties_as_rest_does(grpc_server: GrpcServer) -> None:
    from jobs import client

    admin = new_user(superuser=True)
    stub = stub_for(grpc_server, admin)
    flow = client.workflow(
        [
            {"ref": "a", "type": "test_noop"},
            {"ref": "b", "type": "test_noop", "depends_on": ["a"], "on_parent_failure": "run"},
        ]
    )
    a, b = (Job.objects.get(workflow=flow, workflow_ref=ref) for ref in "ab")
    fetched = stub.GetJob(pb.GetJobRequest(id=str(b.pk)))
    rest = token_client(admin).get(f"/api/v1/jobs/{b.pk}").json()
    assert list(fetched.depends_on) == rest["depends_on"] == [str(a.pk)]
    assert fetched.on_parent_failure == rest["on_parent_failure"] == "run"
    assert fetched.workflow == rest["workflow"] == str(flow.pk)
    assert not fetched.HasField("batch") and rest["batch"] is None
    root = stub.GetJob(pb.GetJobRequest(id=str(a.pk)))
    assert list(root.depends_on) == [] and root.on_parent_failure == "cancel"
