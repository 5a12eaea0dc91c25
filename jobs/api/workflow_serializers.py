"""The shapes of workflows (``POST /api/v1/workflows``, ``GET /api/v1/workflows/{id}``) and batches
(``/api/v1/batches``), for the schema (the views answer with :mod:`jobs.api.representations`' functions;
a test validates real answers)."""

from __future__ import annotations

from rest_framework import serializers

from jobs.api.serializers import JobSubmitSerializer
from jobs.models import Status
from jobs.validation import MAX_NAME
from jobs.workflow_spec import MAX_JOBS

WORKFLOW_STATUSES = [("running", "running"), ("completed", "completed"), ("failed", "failed")]


class WorkflowJobSubmitSerializer(JobSubmitSerializer):
    """One job of a workflow: a job's fields, its ``ref``, and ``depends_on`` naming refs or job ids."""

    ref = serializers.CharField(
        max_length=MAX_NAME, required=False, allow_blank=True, help_text="The job's name within the workflow."
    )
    depends_on = serializers.ListField(
        child=serializers.CharField(),
        max_length=1000,
        required=False,
        allow_null=True,
        help_text="Refs of jobs of this workflow, or ids of stored jobs: this job waits until they have all ended.",
    )


class WorkflowSubmitSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    jobs = serializers.ListField(
        child=WorkflowJobSubmitSerializer(), min_length=1, max_length=MAX_JOBS, help_text=f"1 to {MAX_JOBS:,} jobs."
    )


class WorkflowJobSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    ref = serializers.CharField(allow_blank=True)
    name = serializers.CharField(allow_blank=True)
    type = serializers.CharField()
    queue = serializers.CharField()
    status = serializers.ChoiceField(choices=Status.choices, help_text="`waiting` is shown as blocked.")
    error = serializers.CharField(allow_blank=True, help_text="Why it was cancelled, when a parent failed.")
    depends_on = serializers.ListField(child=serializers.UUIDField(), help_text="Its parents' ids.")


class WorkflowSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    status = serializers.ChoiceField(
        choices=WORKFLOW_STATUSES, help_text="running while a job has not ended; then completed if all completed."
    )
    counts = serializers.DictField(child=serializers.IntegerField(), help_text="total, and jobs by status.")
    jobs = WorkflowJobSerializer(many=True)


BATCH_STATUSES = [("open", "open"), ("running", "running"), ("succeeded", "succeeded"), ("failed", "failed")]


class BatchCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    open = serializers.BooleanField(
        required=False,
        help_text="Take more jobs (`batch` on a submission) until closed; default false: closed at once.",
    )
    jobs = serializers.ListField(
        child=JobSubmitSerializer(),
        required=False,
        max_length=1000,
        help_text="Jobs that join at once (at most 1,000).",
    )
    on_success = JobSubmitSerializer(required=False, allow_null=True, help_text="Enqueued once if every job completed.")
    on_failure = JobSubmitSerializer(
        required=False, allow_null=True, help_text="Enqueued once if a job did not complete."
    )
    on_complete = JobSubmitSerializer(
        required=False, allow_null=True, help_text="Enqueued once when every job has ended."
    )


class BatchSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    status = serializers.ChoiceField(
        choices=BATCH_STATUSES,
        help_text="open; running once closed; then succeeded or failed when every job has ended.",
    )
    closed = serializers.BooleanField()
    finished_at = serializers.DateTimeField(allow_null=True)
    counts = serializers.DictField(child=serializers.IntegerField(), help_text="total, and jobs by status (exact).")
    callbacks = serializers.DictField(child=serializers.UUIDField(), help_text="The callback jobs enqueued, by name.")
