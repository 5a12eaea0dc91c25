"""The REST API's views: thin. Each parses its input, calls :mod:`jobs.service` (or :mod:`jobs.health`)
and renders the result; errors are raised and rendered by :mod:`jobs.api.errors`. What OpenAPI says of
each operation is in :mod:`jobs.api.schema.operations`, applied at the end of this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs import service
from jobs.api import representations as r
from jobs.api import schema
from jobs.api import serializers as s
from jobs.api import wait as w
from jobs.api.index import api_index
from jobs.api.pagination import paginate
from jobs.api.parsers import LimitedJSONParser
from jobs.api.permissions import CHANGE_JOB, CHANGE_QUEUE, DELETE_JOB, HasActionPermission
from jobs.api.renderers import SafeJSONRenderer
from jobs.api.throttling import ScopedThrottle
from jobs.health import health_payload, may_see_details
from jobs.idempotency import user_scope
from jobs.ids import id_text
from jobs.models import Job

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


def with_attempts(job: Job, request: Request) -> dict[str, Any]:
    return r.job_detail(job, request.user, job.attempt_set.all(), service.parent_ids(job))


def submitter(request: Request) -> Any:
    """The user a submission is recorded for (None in open mode, without a token)."""
    return request.user if request.user.is_authenticated else None


class ApiIndexView(ApiView):
    throttle_scopes = {"GET": "read"}

    def get(self, request: Request) -> Response:
        return Response(api_index(request))


class JobCollectionView(ApiView):
    throttle_scopes = {"POST": "submit", "GET": "read"}

    def get(self, request: Request) -> Response:
        query = s.JobListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        f = query.validated_data
        rows = service.list_jobs(
            f.get("status"), f.get("queue"), f.get("type"), f.get("created_after"), f.get("created_before")
        )
        page = paginate(rows, request, f["limit"], f.get("cursor"))
        return Response(
            {
                "results": [r.job_summary(j) for j in page.items],
                "next": page.next,
                "previous": page.previous,
                "next_cursor": page.next_cursor,
                "previous_cursor": page.previous_cursor,
            }
        )

    def post(self, request: Request) -> Response:
        spec = r.spec_from_body(request.data)
        job, created = service.submit(spec, user_scope(request.user), submitted_by=submitter(request))
        parents = service.parent_ids(job) if spec.depends_on else ()  # a job without parents: no query
        body = r.job_detail(job, request.user, parents=parents) if created else with_attempts(job, request)
        body["duplicate"] = job.duplicate
        return Response(body, status=201 if created else 200, headers={"Location": f"/api/v1/jobs/{job.pk}"})


class ManyJobsView(ApiView):
    """A submission of many jobs in one body (a batch of jobs, a workflow, a batch with callbacks): the
    large body limit, and the ``batch`` rate, which counts jobs, not requests."""

    throttle_scopes = {"POST": "batch"}
    max_body_bytes = BATCH_MAX_BODY_BYTES

    def throttle_cost(self, request: Request) -> int:
        """The body's jobs (a body without a list of jobs counts one)."""
        jobs = request.data.get("jobs") if isinstance(request.data, dict) else None
        return len(jobs) if isinstance(jobs, list) and jobs else 1


class JobBatchView(ManyJobsView):
    def post(self, request: Request) -> Response:
        specs = r.batch_specs(request.data)
        rows = service.submit_many(specs, user_scope(request.user), submitted_by=submitter(request))
        jobs = [{"id": id_text(j), "status": j.status, "duplicate": j.duplicate} for j in rows]
        status = 200 if all(j.duplicate for j in rows) else 201
        return Response({"count": len(rows), "jobs": jobs}, status=status)


class WorkflowCollectionView(ManyJobsView):
    def post(self, request: Request) -> Response:
        data = request.data if isinstance(request.data, dict) else {}
        unknown = sorted(key for key in data if key not in ("jobs", "name"))
        if not isinstance(request.data, dict) or unknown:
            raise service.InvalidJob(
                unknown[0] if unknown else "body", 'unknown field; send {"name": ..., "jobs": [...]}'
            )
        flow = service.create_workflow(data.get("jobs"), data.get("name", ""), submitted_by=submitter(request))
        body = r.workflow_detail(service.get_workflow(flow.pk))
        return Response(body, status=201, headers={"Location": f"/api/v1/workflows/{flow.pk}"})


class WorkflowDetailView(ApiView):
    throttle_scopes = {"GET": "read"}

    def get(self, request: Request, workflow_id: str) -> Response:
        return Response(r.workflow_detail(service.get_workflow(workflow_id)))


class BatchCollectionView(ManyJobsView):
    def post(self, request: Request) -> Response:
        data = request.data
        if not isinstance(data, dict):
            raise service.InvalidJob("body", "must be a JSON object")
        values = dict(data)
        name, jobs, is_open = values.pop("name", ""), values.pop("jobs", []), values.pop("open", False)
        if not isinstance(jobs, list) or not isinstance(is_open, bool):
            raise service.InvalidJob("jobs" if not isinstance(jobs, list) else "open", "has the wrong type")
        specs = [r.spec_from_body(raw, f"jobs[{i}]") for i, raw in enumerate(jobs)]
        batch = service.create_batch(name, jobs=specs, open=is_open, submitted_by=submitter(request), **values)
        return Response(r.batch_detail(service.get_batch(batch.pk)), status=201)


class BatchDetailView(ApiView):
    throttle_scopes = {"GET": "read"}

    def get(self, request: Request, batch_id: str) -> Response:
        return Response(r.batch_detail(service.get_batch(batch_id)))


class BatchCloseView(ApiView):
    required_permissions = {"POST": CHANGE_JOB}
    throttle_scopes = {"POST": "write"}

    def post(self, request: Request, batch_id: str) -> Response:
        return Response(r.batch_detail(service.get_batch(service.close_batch(batch_id).pk)))


class BatchCancelView(ApiView):
    required_permissions = {"POST": CHANGE_JOB}
    throttle_scopes = {"POST": "write"}

    def post(self, request: Request, batch_id: str) -> Response:
        return Response(r.batch_detail(service.get_batch(service.cancel_batch(batch_id).pk)))


class JobDetailView(ApiView):
    required_permissions = {"DELETE": DELETE_JOB}
    throttle_scopes = {"GET": "read", "DELETE": "write"}

    def throttle_free(self, request: Request) -> bool:
        """A wait's second look at its job (``jobs.api.wait``) was counted on its first."""
        return w.is_second_look(request)

    def get(self, request: Request, job_id: str) -> Response:
        wait = w.parse_wait(request)
        if wait is None:
            return Response(with_attempts(service.get_job(job_id), request))
        job, headers = w.waited_job(request, job_id, wait)
        return Response(None if job is None else with_attempts(job, request), headers=headers)

    def delete(self, request: Request, job_id: str) -> Response:
        service.delete_finished(job_id)
        return Response(status=204)


class JobCancelView(ApiView):
    required_permissions = {"POST": CHANGE_JOB}
    throttle_scopes = {"POST": "write"}

    def post(self, request: Request, job_id: str) -> Response:
        return Response(with_attempts(service.cancel(job_id), request))


class JobRetryView(ApiView):
    required_permissions = {"POST": CHANGE_JOB}
    throttle_scopes = {"POST": "write"}

    def post(self, request: Request, job_id: str) -> Response:
        return Response(with_attempts(service.retry(job_id), request))


class QueueStatsView(ApiView):
    throttle_scopes = {"GET": "stats"}

    def get(self, request: Request, queue_name: str) -> Response:
        return Response(service.queue_stats(queue_name))


class QueueLimitsView(ApiView):
    """A queue's limits and what they hold back; set them (every worker applies them within a second)."""

    required_permissions = {"PATCH": CHANGE_QUEUE}
    throttle_scopes = {"GET": "stats", "PATCH": "write"}

    def patch(self, request: Request, queue_name: str) -> Response:
        return Response(service.update_queue_limits(queue_name, request.data))

    def get(self, request: Request, queue_name: str) -> Response:
        return Response(service.queue_limits(queue_name))


class QueueStateView(ApiView):
    """Pause (``paused = True``) or resume a queue; answers with the queue's statistics."""

    required_permissions = {"POST": CHANGE_QUEUE}
    throttle_scopes = {"POST": "write"}
    paused = True

    def post(self, request: Request, queue_name: str) -> Response:
        return Response(service.set_paused(queue_name, self.paused))


class QueuePauseView(QueueStateView):
    paused = True


class QueueResumeView(QueueStateView):
    paused = False


class SystemStatsView(ApiView):
    throttle_scopes = {"GET": "stats"}

    def get(self, request: Request) -> Response:
        return Response(service.system_stats())


class WorkerStatsView(ApiView):
    throttle_scopes = {"GET": "stats"}

    def get(self, request: Request) -> Response:
        return Response(service.worker_stats())


class HealthView(ApiView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes: list[Any] = []

    def get(self, request: Request) -> Response:
        status, body = health_payload(detailed=may_see_details(request))
        return Response(body, status=status)


schema.document(
    [
        ApiIndexView,
        JobCollectionView,
        JobBatchView,
        WorkflowCollectionView,
        WorkflowDetailView,
        BatchCollectionView,
        BatchDetailView,
        BatchCloseView,
        BatchCancelView,
        JobDetailView,
        JobCancelView,
        JobRetryView,
        QueueStatsView,
        QueueLimitsView,
        QueuePauseView,
        QueueResumeView,
        SystemStatsView,
        WorkerStatsView,
        HealthView,
    ]
)
