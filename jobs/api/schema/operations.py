"""Each REST view's operations as OpenAPI describes them, by view class name and method.

:func:`document` applies them to the views (``extend_schema_view``), so the views carry no schema
code; a view without an entry here, or an entry without a view, is an error at import.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view

from jobs.api import serializers as s
from jobs.api import workflow_serializers as w
from jobs.api.schema.batch_operations import BATCH_OPERATIONS
from jobs.api.schema.common import (
    COMMON_ERRORS,
    EXAMPLE_ID,
    SEED_JOB,
    SEED_JOB_RESPONSE,
    SEED_SUBMIT_RESPONSE,
    error_responses,
)
from jobs.api.wait import WAIT_PATTERN

JOB_ID = OpenApiParameter("job_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The job's id.")
QUEUE = OpenApiParameter(
    "queue_name", OpenApiTypes.STR, OpenApiParameter.PATH, description="A queue name: 1-64 of A-Z a-z 0-9 _ . : -"
)
WAIT = OpenApiParameter(
    "wait",
    OpenApiTypes.STR,
    OpenApiParameter.QUERY,
    required=False,
    pattern=WAIT_PATTERN,
    description=(
        "Wait up to this long for the job to end: seconds or milliseconds (`30s`, `2.5s`, `250ms`) up to `60s`, "
        "or `1m`. Anything else: 400 naming `wait`. The response's `Zipline-Wait` header is `ended` or `timeout`."
    ),
)
WAIT_OUTCOME = OpenApiParameter(
    "Zipline-Wait",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    response=[200],
    enum=["ended", "timeout"],
    description="Only with `wait`: `ended` when the job has ended, `timeout` when the wait ran out first.",
)
SEED_EXAMPLE = OpenApiExample("SeedWelcomeEmail", value=SEED_JOB, request_only=True)
JOB_EXAMPLE = OpenApiExample("PendingJob", value=SEED_JOB_RESPONSE, response_only=True)
SUBMITTED_EXAMPLE = OpenApiExample("SubmittedJob", value=SEED_SUBMIT_RESPONSE, response_only=True)

_QUEUE_ACTION: dict[str, Any] = {
    "tags": ["queues"],
    "parameters": [QUEUE],
    "request": None,
    "responses": {200: s.QueueStatsSerializer, **error_responses(403, 404, *COMMON_ERRORS)},
}

_JOB_ACTION: dict[str, Any] = {
    "tags": ["jobs"],
    "parameters": [JOB_ID],
    "request": None,
    "responses": {200: s.JobSerializer, **error_responses(403, 404, 409, *COMMON_ERRORS)},
}

_HEALTHY = {
    "status": "ok",
    "timestamp": "2026-01-02T15:04:05.123456Z",
    "version": "0.1.0",
    "workers": {"running": True, "count": 4},
    "redis": {"status": "ok", "latency_ms": 0.4},
    "database": {"status": "ok", "latency_ms": 2.1},
}

OPERATIONS: dict[str, dict[str, Any]] = {
    "ApiIndexView": {
        "get": extend_schema(
            operation_id="api_index",
            tags=["index"],
            summary="What the API offers",
            description=(
                "Every route under `/api/v1/` with its methods (`{job_id}` marks a path parameter), and links to "
                "the Swagger UI (`docs`), ReDoc, the OpenAPI schema and `/health`. Needs a token, like every "
                "`/api/v1/` route."
            ),
            responses={200: s.ApiIndexSerializer, **error_responses(*COMMON_ERRORS)},
        )
    },
    "JobCollectionView": {
        "get": extend_schema(
            operation_id="list_jobs",
            tags=["jobs"],
            summary="List jobs, newest first",
            description=(
                "Filters combine with AND. Pages are cursor-based: follow `next` until it is null, or pass "
                "`next_cursor` as `cursor`."
            ),
            parameters=[s.JobListQuerySerializer],
            responses={200: s.JobPageSerializer, **error_responses(400, 403, *COMMON_ERRORS)},
        ),
        "post": extend_schema(
            operation_id="submit_job",
            tags=["jobs"],
            summary="Submit a job",
            description=(
                "Validates every field, writes the job and hands it to Redis. A future `schedule_at` (or a `delay`) "
                "makes it `scheduled`. Idempotency keys are scoped to the token's user: with a key this user used "
                "before for the same request, the first job is returned with 200 and nothing is written; for a "
                "different request, the answer is 409 naming the key. With `unique_for`, a job whose unique key is "
                "held by an earlier job is not written: the answer is that job with 200 and `duplicate: true`. "
                "With `expires_at` or `expires_in`, a job not started by then ends `expired` and never runs."
            ),
            request=s.JobSubmitSerializer,
            examples=[SEED_EXAMPLE, SUBMITTED_EXAMPLE],
            responses={
                201: OpenApiResponse(s.JobSerializer, description="Created."),
                200: OpenApiResponse(
                    s.JobSerializer,
                    description="The idempotency key was used before, or the unique key is held: the earlier job.",
                ),
                **error_responses(400, 409, 413, 415, *COMMON_ERRORS),
            },
        ),
    },
    "JobBatchView": {
        "post": extend_schema(
            operation_id="submit_jobs_batch",
            tags=["jobs"],
            summary="Submit up to 1,000 jobs at once, all or none",
            description=(
                "One INSERT and one Redis round trip for the whole batch. If any job is invalid nothing is written "
                "and the error names it (`jobs[3].type`). A reused idempotency key fails the batch with 409. "
                "The answer lists only ids and statuses, in the order submitted. A unique job whose key is held (by "
                "a stored job or an earlier job of the batch) is not written: its place shows the holder with "
                "`duplicate: true`; the answer is 200 when every job was a duplicate. Body limit: 16 MiB."
            ),
            request=s.JobBatchSubmitSerializer,
            examples=[
                OpenApiExample(
                    "TwoEmails", value={"jobs": [SEED_JOB, {**SEED_JOB, "name": "send-receipt"}]}, request_only=True
                ),
                OpenApiExample(
                    "Created",
                    value={"count": 1, "jobs": [{"id": EXAMPLE_ID, "status": "pending", "duplicate": False}]},
                    response_only=True,
                    status_codes=["201"],
                ),
            ],
            responses={
                201: s.BatchResultSerializer,
                200: OpenApiResponse(s.BatchResultSerializer, description="Every job was a duplicate."),
                **error_responses(400, 409, 413, 415, *COMMON_ERRORS),
            },
        )
    },
    "WorkflowCollectionView": {
        "post": extend_schema(
            operation_id="create_workflow",
            tags=["workflows"],
            summary="Submit up to 10,000 jobs with dependencies between them, all or none",
            description=(
                "Each job has a `ref`, and its `depends_on` names refs of this workflow or ids of stored jobs. A "
                "job with parents waits `waiting` (blocked) until they have all ended (docs/workflows.md). A "
                "cycle, an unknown ref, more than 10,000 jobs or more than 1,000 parents: 400 naming the job "
                "and the field (`jobs[3].depends_on`), and nothing is written. Body limit: 16 MiB."
            ),
            request=w.WorkflowSubmitSerializer,
            examples=[
                OpenApiExample(
                    "ResizeThenNotify",
                    value={
                        "name": "thumbnails",
                        "jobs": [
                            {
                                "ref": "resize",
                                "type": "process_data",
                                "payload": {"data_size": 100, "operation": "sort"},
                            },
                            {
                                "ref": "notify",
                                "type": "process_data",
                                "payload": {"data_size": 1, "operation": "aggregate"},
                                "depends_on": ["resize"],
                            },
                        ],
                    },
                    request_only=True,
                )
            ],
            responses={201: w.WorkflowSerializer, **error_responses(400, 413, 415, *COMMON_ERRORS)},
        )
    },
    "WorkflowDetailView": {
        "get": extend_schema(
            operation_id="get_workflow",
            tags=["workflows"],
            summary="Get a workflow: its status, counters and jobs with their states",
            parameters=[
                OpenApiParameter("workflow_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="Its id.")
            ],
            responses={200: w.WorkflowSerializer, **error_responses(404, *COMMON_ERRORS)},
        )
    },
    "JobDetailView": {
        "get": extend_schema(
            operation_id="get_job",
            tags=["jobs"],
            summary="Get a job, with its attempts; or wait for it to end",
            description=(
                "With `wait` (e.g. `?wait=30s`, at most `60s`), the answer comes as soon as the job ends "
                "(completed, failed, cancelled, expired) or when the wait runs out, whichever is first: 200 "
                "with the job as it is then. The `Zipline-Wait` header says which: `ended` or `timeout` (the "
                "job's `status` says it too). A job that has already ended answers at once. The server is "
                "woken by the job's end (no polling): many clients may wait at once, each costing an idle "
                "connection, not a server thread."
            ),
            parameters=[JOB_ID, WAIT, WAIT_OUTCOME],
            examples=[JOB_EXAMPLE],
            responses={
                200: OpenApiResponse(
                    s.JobSerializer,
                    description="The job (when `wait` was given: once it ended, or when the wait ran out).",
                ),
                **error_responses(400, 403, 404, *COMMON_ERRORS),
            },
        ),
        "delete": extend_schema(
            operation_id="delete_job",
            tags=["jobs"],
            summary="Delete a finished job",
            description="Only completed, failed, cancelled and expired jobs can be deleted (409 otherwise). Needs `jobs.delete_job`.",
            parameters=[JOB_ID],
            responses={
                204: OpenApiResponse(description="Deleted."),
                **error_responses(403, 404, 409, *COMMON_ERRORS),
            },
        ),
    },
    "JobCancelView": {
        "post": extend_schema(
            operation_id="cancel_job",
            summary="Cancel a job",
            description=(
                "A waiting job (pending, scheduled, retrying) is cancelled at once. A running job is asked to stop: "
                "the answer shows it still running with `cancel_requested: true`, and it ends `cancelled`. "
                "A finished job answers 409. Needs `jobs.change_job`."
            ),
            **_JOB_ACTION,
        )
    },
    "JobRetryView": {
        "post": extend_schema(
            operation_id="retry_job",
            summary="Retry a failed or cancelled job",
            description="The job goes back to pending with a fresh retry budget; other states answer 409. Needs `jobs.change_job`.",
            **_JOB_ACTION,
        )
    },
    "QueueStatsView": {
        "get": extend_schema(
            operation_id="queue_stats",
            tags=["queues"],
            summary="Statistics of one queue",
            description="Counts by status, throughput over the last minute, Redis depths. A queue never used is empty.",
            parameters=[QUEUE],
            responses={200: s.QueueStatsSerializer, **error_responses(403, 404, *COMMON_ERRORS)},
        )
    },
    "QueueLimitsView": {
        "patch": extend_schema(
            operation_id="update_queue_limits",
            tags=["queues"],
            summary="Set a queue's limits",
            description=(
                "Concurrency and rate limits of the queue and of each group in it, across every worker; "
                "live within a second. Needs `jobs.change_queuestate`."
            ),
            parameters=[QUEUE],
            request=s.QueueLimitsSerializer,
            responses={200: s.QueueLimitsResponseSerializer, **error_responses(400, 403, 404, *COMMON_ERRORS)},
        ),
        "get": extend_schema(
            operation_id="queue_limits",
            tags=["queues"],
            summary="A queue's limits, and what they hold back now",
            description="The limits in force, the jobs running against them, the lanes and jobs held by a limit.",
            parameters=[QUEUE],
            responses={200: s.QueueLimitsResponseSerializer, **error_responses(403, 404, *COMMON_ERRORS)},
        ),
    },
    "QueuePauseView": {
        "post": extend_schema(
            operation_id="pause_queue",
            summary="Pause a queue",
            description="Workers stop claiming from it; running jobs finish, submissions are still accepted. Needs `jobs.change_queuestate`.",
            **_QUEUE_ACTION,
        )
    },
    "QueueResumeView": {
        "post": extend_schema(
            operation_id="resume_queue",
            summary="Resume a paused queue",
            description="Needs `jobs.change_queuestate`.",
            **_QUEUE_ACTION,
        )
    },
    "SystemStatsView": {
        "get": extend_schema(
            operation_id="system_stats",
            tags=["stats"],
            summary="Statistics of the whole system",
            description="Totals, a per-queue breakdown, the workers and this API process's uptime.",
            responses={200: s.SystemStatsSerializer, **error_responses(403, *COMMON_ERRORS)},
        )
    },
    "WorkerStatsView": {
        "get": extend_schema(
            operation_id="worker_stats",
            tags=["stats"],
            summary="Every live worker, and totals",
            description="Workers are listed while their heartbeat is fresh (a few seconds).",
            responses={200: s.WorkerStatsSerializer, **error_responses(403, *COMMON_ERRORS)},
        )
    },
    "HealthView": {
        "get": extend_schema(
            operation_id="health",
            tags=["health"],
            summary="Health of the API and its dependencies",
            description="Open (no token). 200 with `status: ok` when the database and Redis answer; 503 with `status: error` when either does not. Why a check failed (`error`) is shown only to a caller with a valid token or a staff session.",
            auth=[],
            responses={
                200: OpenApiResponse(s.HealthSerializer, description="Healthy."),
                503: OpenApiResponse(s.HealthSerializer, description="The database or Redis is unreachable."),
            },
            examples=[OpenApiExample("Healthy", value=_HEALTHY, response_only=True, status_codes=["200"])],
        )
    },
}

OPERATIONS.update(BATCH_OPERATIONS)


def document(views: Iterable[type]) -> None:
    """Give each view its operations from :data:`OPERATIONS`; every view and every entry must match."""
    named = {view.__name__: view for view in views}
    if set(named) != set(OPERATIONS):
        missing, unknown = sorted(set(named) - set(OPERATIONS)), sorted(set(OPERATIONS) - set(named))
        raise LookupError(f"API views without operations: {missing}; operations without a view: {unknown}")
    for name, view in named.items():
        extend_schema_view(**OPERATIONS[name])(view)
