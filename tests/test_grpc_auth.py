"""Who may call the gRPC API: REST's tokens (in the ``authorization`` metadata), permissions and limits.

Missing or wrong token: UNAUTHENTICATED; a token whose user lacks the permission: PERMISSION_DENIED;
over a rate or the payload limit: RESOURCE_EXHAUSTED (with a RetryInfo for a rate).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import pytest
from django.conf import settings
from django.test import override_settings
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from jobs.models import ApiToken, Job
from jobs.roles import OPERATOR, VIEWER
from jobs.tokens import create_token
from tests.grpc_support import GrpcServer, call_error, grpc_server, new_user, pb, stub_for, violations
from tests.helpers import override_zipline

pytestmark = pytest.mark.django_db(transaction=True)
__all__ = ["grpc_server"]

JOB = pb.JobSpec(type="send_email", payload='{"email": "user@example.com"}')


@contextmanager
def rates(**changed: str | None) -> Iterator[None]:
    framework: dict[str, Any] = dict(settings.REST_FRAMEWORK)
    framework["DEFAULT_THROTTLE_RATES"] = {**framework["DEFAULT_THROTTLE_RATES"], **changed}
    with override_settings(REST_FRAMEWORK=framework):
        yield


def test_no_token_or_a_wrong_one_is_unauthenticated(grpc_server: GrpcServer) -> None:
    job = stub_for(grpc_server, new_user()).SubmitJob(pb.SubmitJobRequest(job=JOB)).job
    for token in (None, "0" * 40, "not a token", "x" * 41):
        stub = grpc_server.stub(token)
        for call, request in (
            (stub.SubmitJob, pb.SubmitJobRequest(job=JOB)),
            (stub.GetJob, pb.GetJobRequest(id=job.id)),
        ):
            error = call_error(call, request)
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED, (token, error)
    malformed = grpc_server.stub()
    malformed.metadata = [("authorization", "Basic dXNlcjpwdw==")]
    assert call_error(malformed.GetSystemStats, pb.GetSystemStatsRequest()).code() == grpc.StatusCode.UNAUTHENTICATED
    assert Job.objects.count() == 1


def test_a_deleted_token_is_refused_at_once(grpc_server: GrpcServer) -> None:
    user = new_user()
    key = create_token(user)
    stub = grpc_server.stub(key)
    stub.SubmitJob(pb.SubmitJobRequest(job=JOB))
    ApiToken.objects.filter(user=user).delete()
    assert call_error(stub.SubmitJob, pb.SubmitJobRequest(job=JOB)).code() == grpc.StatusCode.UNAUTHENTICATED


def test_the_token_keyword_and_an_inactive_user(grpc_server: GrpcServer) -> None:
    user = new_user()
    stub = grpc_server.stub()
    stub.metadata = [("authorization", f"Token {create_token(user)}")]
    assert stub.SubmitJob(pb.SubmitJobRequest(job=JOB)).created
    user.is_active = False
    user.save()
    assert call_error(stub.SubmitJob, pb.SubmitJobRequest(job=JOB)).code() == grpc.StatusCode.UNAUTHENTICATED


def test_permissions_are_rests(grpc_server: GrpcServer) -> None:
    plain = stub_for(grpc_server, new_user())  # a token only: may submit, nothing else
    job = plain.SubmitJob(pb.SubmitJobRequest(job=JOB)).job
    reads = [
        (plain.GetJob, pb.GetJobRequest(id=job.id)),
        (plain.ListJobs, pb.ListJobsRequest()),
        (plain.GetQueueStats, pb.GetQueueStatsRequest(queue="default")),
        (plain.GetSystemStats, pb.GetSystemStatsRequest()),
        (plain.GetWorkerStats, pb.GetWorkerStatsRequest()),
        (plain.CancelJob, pb.CancelJobRequest(id=job.id)),
        (plain.RetryJob, pb.RetryJobRequest(id=job.id)),
    ]
    for call, request in reads:
        error = call_error(call, request)
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED, call
    assert "jobs.view_job" in call_error(plain.GetJob, pb.GetJobRequest(id=job.id)).details()
    watch = call_error(list, plain.WatchJob(pb.WatchJobRequest(id=job.id)))
    assert watch.code() == grpc.StatusCode.PERMISSION_DENIED
    viewer = stub_for(grpc_server, new_user(VIEWER))
    assert viewer.GetJob(pb.GetJobRequest(id=job.id)).id == job.id
    assert viewer.ListJobs(pb.ListJobsRequest()).jobs
    denied = call_error(viewer.CancelJob, pb.CancelJobRequest(id=job.id))
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED and "jobs.change_job" in denied.details()
    operator = stub_for(grpc_server, new_user(OPERATOR))
    assert operator.CancelJob(pb.CancelJobRequest(id=job.id)).status == "cancelled"


def test_open_mode_needs_no_token(grpc_server: GrpcServer) -> None:
    with override_zipline(api_open=True, debug=True):
        answer = grpc_server.stub().SubmitJob(pb.SubmitJobRequest(job=JOB))
        assert answer.created and Job.objects.get(pk=answer.job.id).submitted_by is None
        assert grpc_server.stub().GetJob(pb.GetJobRequest(id=answer.job.id)).id == answer.job.id


def test_over_the_submit_rate_is_resource_exhausted_with_a_retry_delay(grpc_server: GrpcServer) -> None:
    stub = stub_for(grpc_server, new_user())
    with rates(submit="2/min", batch="3/min"):
        for _ in range(2):
            stub.SubmitJob(pb.SubmitJobRequest(job=JOB))
        error = call_error(stub.SubmitJob, pb.SubmitJobRequest(job=JOB))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        status = rpc_status.from_call(error)
        assert status is not None
        retry = [d for d in status.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
        assert len(retry) == 1
        info = error_details_pb2.RetryInfo()
        retry[0].Unpack(info)
        assert 1 <= info.retry_delay.seconds <= 60
        # The batch rate counts jobs, as REST's does: 2 jobs, then 2 more are over 3 a minute.
        assert stub.SubmitJobs(pb.SubmitJobsRequest(jobs=[JOB] * 2)).count == 2
        batch = call_error(stub.SubmitJobs, pb.SubmitJobsRequest(jobs=[JOB] * 2))
        assert batch.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert Job.objects.count() == 4


def test_a_payload_over_the_limit_is_resource_exhausted(grpc_server: GrpcServer) -> None:
    stub = stub_for(grpc_server, new_user())
    with override_zipline(max_payload_bytes=100):
        big = pb.JobSpec(type="send_email", payload='{"email": "user@example.com", "body": "%s"}' % ("x" * 200))
        error = call_error(stub.SubmitJob, pb.SubmitJobRequest(job=big))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "payload" in violations(error)
    huge = pb.JobSpec(type="send_email", payload="x" * (16 * 1024 * 1024 + 1))  # over the batch body's limit
    too_big = call_error(stub.SubmitJobs, pb.SubmitJobsRequest(jobs=[huge]))
    assert too_big.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert not Job.objects.exists()


def test_failed_tokens_lock_the_address_out_as_rests_do(grpc_server: GrpcServer) -> None:
    good = stub_for(grpc_server, new_user())
    with override_zipline(auth_failure_limit=2, auth_failure_window=600.0):
        for _ in range(2):
            call_error(grpc_server.stub("f" * 40).SubmitJob, pb.SubmitJobRequest(job=JOB))
        locked = call_error(good.SubmitJob, pb.SubmitJobRequest(job=JOB))
    assert locked.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "too many failed logins" in locked.details()
