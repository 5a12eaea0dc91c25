"""WatchJob through a job's whole life, with real workers (``manage.py runworkers``): each change of the
job's status, attempts or cancel request arrives, and the stream ends when the job does, or at the deadline.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from jobs.grpc import servicer
from jobs.models import Job
from tests.grpc_support import GrpcServer, call_error, grpc_server, new_user, pb, stub_for
from tests.helpers import wait_for
from tests.procs import running, wait_for_workers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
__all__ = ["grpc_server"]

WORKERS = ["runworkers", "--processes", "1", "--concurrency", "2"]


def _submit(stub: Any, job_type: str, payload: dict[str, Any], **fields: Any) -> pb.Job:
    return stub.SubmitJob(pb.SubmitJobRequest(job=pb.JobSpec(type=job_type, payload=json.dumps(payload), **fields))).job


def test_a_job_that_completes(grpc_server: GrpcServer, broker: Any, tmp_path: Path) -> None:
    stub = stub_for(grpc_server, new_user(superuser=True))
    job = _submit(stub, "test_sleep", {"seconds": 0.5})
    watch = stub.WatchJob(pb.WatchJobRequest(id=job.id), timeout=60)
    first = next(watch)
    assert (first.id, first.status) == (job.id, "pending")
    with running(WORKERS, tmp_path):
        rest = list(watch)
    assert [m.status for m in rest] == ["running", "completed"]
    assert rest[0].attempts == 1 and rest[0].worker
    assert json.loads(rest[-1].result) == "slept" and len(rest[-1].attempt_history) == 1


def test_a_job_that_fails_retries_and_fails_for_good(grpc_server: GrpcServer, broker: Any, tmp_path: Path) -> None:
    stub = stub_for(grpc_server, new_user(superuser=True))
    retry = pb.RetryPolicy(max_retries=1, backoff="fixed", initial_delay="1s", jitter=False)
    job = _submit(stub, "test_fail", {"message": "no luck"}, retry=retry)
    watch = stub.WatchJob(pb.WatchJobRequest(id=job.id), timeout=60)
    assert next(watch).status == "pending"
    with running(WORKERS, tmp_path):
        seen = [(m.status, m.attempts) for m in watch]
    # An attempt of test_fail lasts less than a poll: its "running" may pass unseen, its attempt never does.
    assert ("retrying", 1) in seen and seen[-1] == ("failed", 2)
    assert {a for _, a in seen} == {1, 2}
    assert [a for _, a in seen] == sorted(a for _, a in seen)  # in order, never back


def test_a_running_job_cancelled(grpc_server: GrpcServer, broker: Any, tmp_path: Path) -> None:
    stub = stub_for(grpc_server, new_user(superuser=True))
    job = _submit(stub, "test_sleep", {"seconds": 30})
    seen: list[tuple[str, bool]] = []
    with running(WORKERS, tmp_path) as pool:
        [worker] = wait_for_workers(broker, 1, proc=pool)
        stats = stub.GetWorkerStats(pb.GetWorkerStatsRequest())
        assert [(w.id, w.pid) for w in stats.workers] == [(worker["id"], worker["pid"])] and stats.totals.count == 1
        assert stats.workers[0].HasField("heartbeat_at") and stats.workers[0].concurrency == 2
        watch = stub.WatchJob(pb.WatchJobRequest(id=job.id), timeout=60)
        for message in watch:
            seen.append((message.status, message.cancel_requested))
            if message.status == "running" and not message.cancel_requested:
                assert stub.CancelJob(pb.CancelJobRequest(id=job.id)).cancel_requested
    assert seen[-1][0] == "cancelled"
    assert ("running", True) in seen  # the request is a change of its own


def test_the_stream_ends_at_the_clients_deadline(grpc_server: GrpcServer) -> None:
    stub = stub_for(grpc_server, new_user(superuser=True))
    later = Timestamp()
    later.FromDatetime(datetime.now(UTC) + timedelta(hours=1))
    job = _submit(stub, "send_email", {"email": "user@example.com"}, schedule_at=later)
    watch = stub.WatchJob(pb.WatchJobRequest(id=job.id), timeout=0.5)
    assert next(watch).status == "scheduled"
    error = call_error(list, watch)
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_without_a_deadline_the_server_bounds_the_watch(
    grpc_server: GrpcServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(servicer, "WATCH_LIMIT", 0.3)
    stub = stub_for(grpc_server, new_user(superuser=True))
    later = Timestamp()
    later.FromDatetime(datetime.now(UTC) + timedelta(hours=1))
    job = _submit(stub, "send_email", {"email": "user@example.com"}, schedule_at=later)
    watch = stub.WatchJob(pb.WatchJobRequest(id=job.id), timeout=None)
    assert next(watch).status == "scheduled"
    error = call_error(list, watch)
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED and "still scheduled" in error.details()


def test_a_job_deleted_while_watched_is_not_found(grpc_server: GrpcServer) -> None:
    stub = stub_for(grpc_server, new_user(superuser=True))
    job = _submit(stub, "send_email", {"email": "user@example.com"})
    watch = stub.WatchJob(pb.WatchJobRequest(id=job.id), timeout=10)
    assert next(watch).status == "pending"
    Job.objects.filter(pk=job.id).delete()
    error = call_error(list, watch)
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_clients_that_go_away_free_the_servers_threads(grpc_server: GrpcServer) -> None:
    """Cancelled watches end on the server at once (their threads go back to the pool), not at their 30 s deadlines."""
    stub = stub_for(grpc_server, new_user(superuser=True))
    job = _submit(stub, "send_email", {"email": "user@example.com"})
    watches = [stub.WatchJob(pb.WatchJobRequest(id=job.id), timeout=30) for _ in range(3)]
    for watch in watches:
        assert next(watch).status == "pending"
    servicer = grpc_server.served.servicer
    assert len(servicer._watches) == 3  # each watch is under way on the server
    for watch in watches:
        watch.cancel()
    wait_for(lambda: not servicer._watches, 3, message="the cancelled watches to end on the server")
