"""The gRPC API's methods: thin, as REST's views are. Each converts its request (:mod:`jobs.grpc.convert`),
calls :mod:`jobs.service` as the matching REST view does, and converts the answer back; :mod:`jobs.grpc.calls`
admits the call first (token, permission, the REST scope's rate) and turns any error into a status.

Each method needs what its REST counterpart needs: a token to submit, ``jobs.view_job`` to read,
``jobs.change_job`` to cancel or retry.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC
from typing import Any

import grpc

from jobs import service
from jobs.api.pagination import page_of
from jobs.api.representations import MAX_BATCH
from jobs.api.serializers import JobListQuerySerializer
from jobs.grpc import convert, watch
from jobs.grpc.calls import stream, unary
from jobs.grpc.errors import CallEnded
from jobs.grpc.proto.zipline.v1 import zipline_pb2 as pb
from jobs.grpc.proto.zipline.v1 import zipline_pb2_grpc as pb_grpc
from jobs.idempotency import user_scope
from jobs.roles import CHANGE_JOB, VIEW_JOB
from jobs.validation import InvalidJob

#: How long a watch may last when the client set no deadline.
WATCH_LIMIT = 3600.0


def submitter(user: Any) -> Any:
    """The user a submission is recorded for (None in open mode, without a token)."""
    return user if user.is_authenticated else None


def _batch_cost(request: pb.SubmitJobsRequest) -> int:
    """The ``batch`` rate counts jobs, as REST's does."""
    return max(1, len(request.jobs))


class ZipLineServicer(pb_grpc.ZipLineServicer):
    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._watches: set[threading.Event] = set()
        self._lock = threading.Lock()

    def stop_watches(self) -> None:
        """End every watch now (UNAVAILABLE: watch again, elsewhere): a stopping server does not wait for them."""
        self.stopping.set()
        with self._lock:
            for ended in self._watches:
                ended.set()

    @unary("submit")
    def SubmitJob(self, request: pb.SubmitJobRequest, context: Any, user: Any) -> pb.SubmitJobResponse:
        spec = convert.spec_from_message(request.job)
        job, created = service.submit(spec, user_scope(user), submitted_by=submitter(user))
        parents = service.parent_ids(job) if spec.depends_on or not created else ()  # none asked: no query
        detail = convert.job_detail(job, user, () if created else job.attempt_set.all(), parents)
        return pb.SubmitJobResponse(job=detail, created=created, duplicate=job.duplicate)

    @unary("batch", cost=_batch_cost)
    def SubmitJobs(self, request: pb.SubmitJobsRequest, context: Any, user: Any) -> pb.SubmitJobsResponse:
        if not 1 <= len(request.jobs) <= MAX_BATCH:
            raise InvalidJob("jobs", f"must be a list of 1 to {MAX_BATCH} jobs")
        specs = [convert.spec_from_message(job, f"jobs[{index}].") for index, job in enumerate(request.jobs)]
        rows = service.submit_many(specs, user_scope(user), submitted_by=submitter(user))
        jobs = [pb.SubmittedJob(id=str(j.pk), status=j.status, duplicate=j.duplicate) for j in rows]
        return pb.SubmitJobsResponse(count=len(rows), jobs=jobs)

    @unary("read", VIEW_JOB)
    def GetJob(self, request: pb.GetJobRequest, context: Any, user: Any) -> pb.Job:
        job = service.get_job(convert.job_id(request.id))
        return convert.job_detail(job, user, job.attempt_set.all(), service.parent_ids(job))

    @unary("read", VIEW_JOB)
    def ListJobs(self, request: pb.ListJobsRequest, context: Any, user: Any) -> pb.ListJobsResponse:
        query = JobListQuerySerializer(data=_list_query(request))
        query.is_valid(raise_exception=True)
        f = query.validated_data
        rows = service.list_jobs(
            f.get("status"), f.get("queue"), f.get("type"), f.get("created_after"), f.get("created_before")
        )
        items, next_cursor, previous_cursor, _ = page_of(rows, f["limit"], f.get("cursor"))
        return pb.ListJobsResponse(
            jobs=[convert.job_summary(j) for j in items], next_cursor=next_cursor, previous_cursor=previous_cursor
        )

    @unary("write", CHANGE_JOB)
    def CancelJob(self, request: pb.CancelJobRequest, context: Any, user: Any) -> pb.Job:
        job = service.cancel(convert.job_id(request.id))
        return convert.job_detail(job, user, job.attempt_set.all(), service.parent_ids(job))

    @unary("write", CHANGE_JOB)
    def RetryJob(self, request: pb.RetryJobRequest, context: Any, user: Any) -> pb.Job:
        job = service.retry(convert.job_id(request.id))
        return convert.job_detail(job, user, job.attempt_set.all(), service.parent_ids(job))

    @unary("stats", VIEW_JOB)
    def GetQueueStats(self, request: pb.GetQueueStatsRequest, context: Any, user: Any) -> pb.QueueStats:
        return convert.from_dict(service.queue_stats(request.queue), pb.QueueStats())

    @unary("stats", VIEW_JOB)
    def GetSystemStats(self, request: pb.GetSystemStatsRequest, context: Any, user: Any) -> pb.SystemStats:
        return convert.from_dict(service.system_stats(), pb.SystemStats())

    @unary("stats", VIEW_JOB)
    def GetWorkerStats(self, request: pb.GetWorkerStatsRequest, context: Any, user: Any) -> pb.WorkerStats:
        return convert.from_dict(service.worker_stats(), pb.WorkerStats())

    @stream("read", VIEW_JOB)
    def WatchJob(self, request: pb.WatchJobRequest, context: Any, user: Any) -> Iterator[pb.Job]:
        remaining = context.time_remaining()
        limit = WATCH_LIMIT if remaining is None else min(remaining, WATCH_LIMIT)
        ended = threading.Event()
        context.add_callback(ended.set)  # the client went away, or the call ended
        with self._lock:
            self._watches.add(ended)
            if self.stopping.is_set():  # accepted just before the stop
                ended.set()
        try:
            job = None
            for job in watch.changes(convert.job_id(request.id), time.monotonic() + limit, ended):
                yield convert.job_detail(job, user, job.attempt_set.all(), service.parent_ids(job))
        finally:
            with self._lock:
                self._watches.discard(ended)
        if job is None or job.is_finished:
            return
        if self.stopping.is_set():
            raise CallEnded(grpc.StatusCode.UNAVAILABLE, "the server is stopping; watch again")
        if context.is_active():  # else the client went away, or its own deadline passed: it knows
            raise CallEnded(grpc.StatusCode.DEADLINE_EXCEEDED, f"job {job.pk} is still {job.status}")


def _list_query(request: pb.ListJobsRequest) -> dict[str, Any]:
    """ListJobs' filters as REST's query string gives them to the same serializer (unset: absent)."""
    query: dict[str, Any] = {"status": list(request.status)} if request.status else {}
    for name in ("queue", "type", "limit", "cursor"):
        if request.HasField(name):
            query[name] = getattr(request, name)
    for name in ("created_after", "created_before"):
        if request.HasField(name):
            query[name] = getattr(request, name).ToDatetime(tzinfo=UTC)
    return query
