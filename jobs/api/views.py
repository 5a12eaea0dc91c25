"""The REST API's views: thin. Each parses its input, calls the library (``jobs.client``,
``jobs.queues``, ``jobs.health``) and renders the result; errors are raised and rendered by
:mod:`jobs.api.errors`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import psycopg
from django.db import DataError, IntegrityError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs import client, queues
from jobs.api import serializers as s
from jobs.api.errors import ApiError
from jobs.api.index import api_index
from jobs.api.pagination import paginate
from jobs.api.parsers import LimitedJSONParser
from jobs.api.permissions import CHANGE_JOB, CHANGE_QUEUE, DELETE_JOB, HasActionPermission
from jobs.api.renderers import SafeJSONRenderer
from jobs.api.schema import (
    COMMON_ERRORS,
    EXAMPLE_ID,
    SEED_JOB,
    SEED_JOB_RESPONSE,
    SEED_SUBMIT_RESPONSE,
    error_responses,
)
from jobs.api.throttling import ScopedThrottle
from jobs.health import health_payload, may_see_details
from jobs.idempotency import user_scope
from jobs.models import Job
from jobs.states import TransitionError
from jobs.validation import InvalidJob, JobSpec

T = TypeVar("T")

BATCH_MAX_BODY_BYTES = 16 * 1024 * 1024


class JSONOnly(BaseContentNegotiation):
    """Always JSON, whatever the Accept header says: no 406 for a browser's ``text/html``."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        content_type = request.content_type.split(";")[0].strip().lower()
        return next((p for p in parsers if p.media_type == content_type), None)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class ApiView(APIView):
    """Base of every API view: JSON in and out, token auth, per-method permissions and rate scopes."""

    parser_classes = [LimitedJSONParser]
    renderer_classes = [SafeJSONRenderer]
    content_negotiation_class = JSONOnly
    permission_classes = [HasActionPermission]
    throttle_classes = [ScopedThrottle]
    required_permissions: dict[str, str] = {}
    throttle_scopes: dict[str, str] = {}


def job_pk(job_id: str) -> uuid.UUID:
    """The id in the path; a malformed one is a 404 like an unknown one (it names no job)."""
    try:
        return uuid.UUID(job_id)
    except (ValueError, TypeError, AttributeError):
        raise ApiError(404, "not_found", f"no job {job_id!r}") from None


def find_job(pk: uuid.UUID) -> Job:
    job = Job.objects.filter(pk=pk).first()
    if job is None:
        raise ApiError(404, "not_found", f"no job {pk}")
    return job


def with_attempts(job: Job, request: Request) -> dict[str, Any]:
    return s.job_detail(job, request.user, job.attempt_set.all())


def submitter(request: Request) -> Any:
    """The user a submission is recorded for (None in open mode, without a token)."""
    return request.user if request.user.is_authenticated else None


def storing(write: Callable[[], T]) -> T:
    """Run ``write``; a value the database still refuses becomes a 400, and nothing is written.

    The shared validation refuses what the database cannot store (NUL characters, lone surrogates,
    dates it cannot read back), so this is the last line, not the rule.
    """
    try:
        return write()
    except (DataError, psycopg.DataError) as exc:
        raise InvalidJob("body", f"cannot be stored: {str(exc).splitlines()[0]}") from None
    except psycopg.IntegrityError as exc:  # the batch's COPY reports psycopg's own errors
        raise IntegrityError(str(exc)) from None


JOB_ID = OpenApiParameter("job_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The job's id.")
QUEUE = OpenApiParameter(
    "queue_name", OpenApiTypes.STR, OpenApiParameter.PATH, description="A queue name: 1-64 of A-Z a-z 0-9 _ . : -"
)
SEED_EXAMPLE = OpenApiExample("SeedWelcomeEmail", value=SEED_JOB, request_only=True)
JOB_EXAMPLE = OpenApiExample("PendingJob", value=SEED_JOB_RESPONSE, response_only=True)
SUBMITTED_EXAMPLE = OpenApiExample("SubmittedJob", value=SEED_SUBMIT_RESPONSE, response_only=True)


class ApiIndexView(ApiView):
    throttle_scopes = {"GET": "read"}

    @extend_schema(
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
    def get(self, request: Request) -> Response:
        return Response(api_index(request))


class JobCollectionView(ApiView):
    throttle_scopes = {"POST": "submit", "GET": "read"}

    @extend_schema(
        operation_id="list_jobs",
        tags=["jobs"],
        summary="List jobs, newest first",
        description=(
            "Filters combine with AND. Pages are cursor-based: follow `next` until it is null, or pass "
            "`next_cursor` as `cursor`."
        ),
        parameters=[s.JobListQuerySerializer],
        responses={200: s.JobPageSerializer, **error_responses(400, 403, *COMMON_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        query = s.JobListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        f = query.validated_data
        rows = Job.objects.defer("payload", "result", "traceback")
        if f.get("status"):
            rows = rows.in_state(*f["status"])
        if "queue" in f:
            rows = rows.filter(queue=f["queue"])
        if "type" in f:
            rows = rows.filter(type=f["type"])
        if "created_after" in f:
            rows = rows.filter(created_at__gte=f["created_after"])
        if "created_before" in f:
            rows = rows.filter(created_at__lt=f["created_before"])
        page = paginate(rows, request, f["limit"], f.get("cursor"))
        return Response(
            {
                "results": [s.job_summary(j) for j in page.items],
                "next": page.next,
                "previous": page.previous,
                "next_cursor": page.next_cursor,
                "previous_cursor": page.previous_cursor,
            }
        )

    @extend_schema(
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
    )
    def post(self, request: Request) -> Response:
        spec = s.spec_from_body(request.data)
        job, created = storing(
            lambda: client.enqueue_idempotent(spec, user_scope(request.user), submitted_by=submitter(request))
        )
        body = s.job_detail(job, request.user) if created else with_attempts(job, request)
        body["duplicate"] = job.duplicate
        return Response(body, status=201 if created else 200, headers={"Location": f"/api/v1/jobs/{job.pk}"})


class JobBatchView(ApiView):
    throttle_scopes = {"POST": "batch"}
    max_body_bytes = BATCH_MAX_BODY_BYTES

    def throttle_cost(self, request: Request) -> int:
        """The ``batch`` rate counts jobs, not requests (a body without a list of jobs counts one)."""
        jobs = request.data.get("jobs") if isinstance(request.data, dict) else None
        return len(jobs) if isinstance(jobs, list) else 1

    @extend_schema(
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
    def post(self, request: Request) -> Response:
        specs = s.batch_specs(request.data)
        scope = user_scope(request.user)
        try:
            rows = storing(lambda: client.enqueue_many(specs, scope, submitted_by=submitter(request)))
        except IntegrityError:
            message = "an idempotency key is reused; nothing was written"
            raise ApiError(409, "conflict", message, reused_keys(specs, scope)) from None
        jobs = [{"id": str(j.pk), "status": j.status, "duplicate": j.duplicate} for j in rows]
        status = 200 if all(j.duplicate for j in rows) else 201
        return Response({"count": len(rows), "jobs": jobs}, status=status)


def reused_keys(specs: list[JobSpec], scope: str) -> dict[str, list[str]]:
    """Which jobs of a refused batch reuse an idempotency key: twice in the batch, or already stored."""
    details: dict[str, list[str]] = {}
    first: dict[str, int] = {}
    for index, spec in enumerate(specs):
        key = spec.idempotency_key
        if key is None:
            continue
        if key in first:
            details[f"jobs[{index}].idempotency_key"] = [f"{key!r} is jobs[{first[key]}]'s too"]
        else:
            first[key] = index
    stored = Job.objects.filter(idempotency_scope=scope, idempotency_key__in=list(first))
    for key, job_id in stored.values_list("idempotency_key", "id"):
        details[f"jobs[{first[str(key)]}].idempotency_key"] = [f"{key!r} is already job {job_id}'s"]
    return details


class JobDetailView(ApiView):
    required_permissions = {"DELETE": DELETE_JOB}
    throttle_scopes = {"GET": "read", "DELETE": "write"}

    @extend_schema(
        operation_id="get_job",
        tags=["jobs"],
        summary="Get a job, with its attempts",
        parameters=[JOB_ID],
        examples=[JOB_EXAMPLE],
        responses={200: s.JobSerializer, **error_responses(403, 404, *COMMON_ERRORS)},
    )
    def get(self, request: Request, job_id: str) -> Response:
        return Response(with_attempts(find_job(job_pk(job_id)), request))

    @extend_schema(
        operation_id="delete_job",
        tags=["jobs"],
        summary="Delete a finished job",
        description="Only completed, failed and cancelled jobs can be deleted (409 otherwise). Needs `jobs.delete_job`.",
        parameters=[JOB_ID],
        responses={204: OpenApiResponse(description="Deleted."), **error_responses(403, 404, 409, *COMMON_ERRORS)},
    )
    def delete(self, request: Request, job_id: str) -> Response:
        pk = job_pk(job_id)
        deleted, _ = Job.objects.filter(pk=pk).finished().delete()
        if not deleted:
            job = find_job(pk)
            raise TransitionError(
                pk,
                job.status,
                "deleted",
                f"job {pk} is {job.status}; only a completed, failed or cancelled job can be deleted",
            )
        return Response(status=204)


class JobCancelView(ApiView):
    required_permissions = {"POST": CHANGE_JOB}
    throttle_scopes = {"POST": "write"}

    @extend_schema(
        operation_id="cancel_job",
        tags=["jobs"],
        summary="Cancel a job",
        description=(
            "A waiting job (pending, scheduled, retrying) is cancelled at once. A running job is asked to stop: "
            "the answer shows it still running with `cancel_requested: true`, and it ends `cancelled`. "
            "A finished job answers 409. Needs `jobs.change_job`."
        ),
        parameters=[JOB_ID],
        request=None,
        responses={200: s.JobSerializer, **error_responses(403, 404, 409, *COMMON_ERRORS)},
    )
    def post(self, request: Request, job_id: str) -> Response:
        return Response(with_attempts(client.cancel(job_pk(job_id)), request))


class JobRetryView(ApiView):
    required_permissions = {"POST": CHANGE_JOB}
    throttle_scopes = {"POST": "write"}

    @extend_schema(
        operation_id="retry_job",
        tags=["jobs"],
        summary="Retry a failed or cancelled job",
        description="The job goes back to pending with a fresh retry budget; other states answer 409. Needs `jobs.change_job`.",
        parameters=[JOB_ID],
        request=None,
        responses={200: s.JobSerializer, **error_responses(403, 404, 409, *COMMON_ERRORS)},
    )
    def post(self, request: Request, job_id: str) -> Response:
        return Response(with_attempts(client.retry(job_pk(job_id)), request))


class QueueStatsView(ApiView):
    throttle_scopes = {"GET": "stats"}

    @extend_schema(
        operation_id="queue_stats",
        tags=["queues"],
        summary="Statistics of one queue",
        description="Counts by status, throughput over the last minute, Redis depths. A queue never used is empty.",
        parameters=[QUEUE],
        responses={200: s.QueueStatsSerializer, **error_responses(403, 404, *COMMON_ERRORS)},
    )
    def get(self, request: Request, queue_name: str) -> Response:
        return Response(queues.queue_stats(queue_name))


class QueueStateView(ApiView):
    """Pause (``paused = True``) or resume a queue; answers with the queue's statistics."""

    required_permissions = {"POST": CHANGE_QUEUE}
    throttle_scopes = {"POST": "write"}
    paused = True

    def post(self, request: Request, queue_name: str) -> Response:
        return Response(queues.set_paused(queue_name, self.paused))


_QUEUE_ACTION: dict[str, Any] = {
    "tags": ["queues"],
    "parameters": [QUEUE],
    "request": None,
    "responses": {200: s.QueueStatsSerializer, **error_responses(403, 404, *COMMON_ERRORS)},
}


@extend_schema_view(
    post=extend_schema(
        operation_id="pause_queue",
        summary="Pause a queue",
        description="Workers stop claiming from it; running jobs finish, submissions are still accepted. Needs `jobs.change_queuestate`.",
        **_QUEUE_ACTION,
    )
)
class QueuePauseView(QueueStateView):
    paused = True


@extend_schema_view(
    post=extend_schema(
        operation_id="resume_queue",
        summary="Resume a paused queue",
        description="Needs `jobs.change_queuestate`.",
        **_QUEUE_ACTION,
    )
)
class QueueResumeView(QueueStateView):
    paused = False


class SystemStatsView(ApiView):
    throttle_scopes = {"GET": "stats"}

    @extend_schema(
        operation_id="system_stats",
        tags=["stats"],
        summary="Statistics of the whole system",
        description="Totals, a per-queue breakdown, the workers and this API process's uptime.",
        responses={200: s.SystemStatsSerializer, **error_responses(403, *COMMON_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        return Response(queues.system_stats())


class WorkerStatsView(ApiView):
    throttle_scopes = {"GET": "stats"}

    @extend_schema(
        operation_id="worker_stats",
        tags=["stats"],
        summary="Every live worker, and totals",
        description="Workers are listed while their heartbeat is fresh (a few seconds).",
        responses={200: s.WorkerStatsSerializer, **error_responses(403, *COMMON_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        return Response(queues.worker_stats())


class HealthView(ApiView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes: list[Any] = []

    @extend_schema(
        operation_id="health",
        tags=["health"],
        summary="Health of the API and its dependencies",
        description="Open (no token). 200 with `status: ok` when the database and Redis answer; 503 with `status: error` when either does not. Why a check failed (`error`) is shown only to a caller with a valid token or a staff session.",
        auth=[],
        responses={
            200: OpenApiResponse(s.HealthSerializer, description="Healthy."),
            503: OpenApiResponse(s.HealthSerializer, description="The database or Redis is unreachable."),
        },
        examples=[
            OpenApiExample(
                "Healthy",
                value={
                    "status": "ok",
                    "timestamp": "2026-01-02T15:04:05.123456Z",
                    "version": "0.1.0",
                    "workers": {"running": True, "count": 4},
                    "redis": {"status": "ok", "latency_ms": 0.4},
                    "database": {"status": "ok", "latency_ms": 2.1},
                },
                response_only=True,
                status_codes=["200"],
            ),
        ],
    )
    def get(self, request: Request) -> Response:
        status, body = health_payload(detailed=may_see_details(request))
        return Response(body, status=status)
