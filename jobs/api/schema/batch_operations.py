"""The batches' operations as OpenAPI describes them (merged into :data:`jobs.api.schema.operations.OPERATIONS`)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema

from jobs.api import workflow_serializers as w
from jobs.api.schema.common import COMMON_ERRORS, error_responses

BATCH_ID = OpenApiParameter("batch_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The batch's id.")

BATCH_OPERATIONS: dict[str, dict[str, Any]] = {
    "BatchCollectionView": {
        "post": extend_schema(
            operation_id="create_batch",
            tags=["batches"],
            summary="Create a batch with callbacks, and the jobs that join it at once",
            description=(
                "`on_success` (every job completed), `on_failure` (a job did not complete) and `on_complete` (every "
                "job ended) are jobs, each enqueued exactly once when the batch is closed and its last job has ended "
                "(docs/workflows.md#batches). With `open: true` more jobs may join (`batch` on a submission) until "
                "`POST /api/v1/batches/{id}/close`. All or none: a bad job or callback is a 400 naming it."
            ),
            request=w.BatchCreateSerializer,
            responses={201: w.BatchSerializer, **error_responses(400, 413, 415, *COMMON_ERRORS)},
        )
    },
    "BatchDetailView": {
        "get": extend_schema(
            operation_id="get_batch",
            tags=["batches"],
            summary="Get a batch: its status, exact counters and callbacks",
            parameters=[BATCH_ID],
            responses={200: w.BatchSerializer, **error_responses(403, 404, *COMMON_ERRORS)},
        )
    },
    "BatchCloseView": {
        "post": extend_schema(
            operation_id="close_batch",
            tags=["batches"],
            summary="Close a batch: no job may join any more",
            description="If every job has ended, the callbacks are enqueued now. Needs `jobs.change_job`.",
            parameters=[BATCH_ID],
            request=None,
            responses={200: w.BatchSerializer, **error_responses(403, 404, *COMMON_ERRORS)},
        )
    },
    "BatchCancelView": {
        "post": extend_schema(
            operation_id="cancel_batch",
            tags=["batches"],
            summary="Cancel a batch: close it and cancel every job of it that has not ended",
            description="Running jobs are asked to stop. Needs `jobs.change_job`.",
            parameters=[BATCH_ID],
            request=None,
            responses={200: w.BatchSerializer, **error_responses(403, 404, *COMMON_ERRORS)},
        )
    },
}
