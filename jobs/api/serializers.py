"""The shapes the API reads and answers, as serializer classes: the documentation of the request bodies
and of the responses :mod:`jobs.api.representations` builds, for the OpenAPI schema. A test validates
real responses against the schema built from them, so the two cannot drift.

Only the list endpoint's query string is validated here (:class:`JobListQuerySerializer`).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobs.api.limit_serializers import QueueLimitsResponseSerializer as QueueLimitsResponseSerializer
from jobs.api.limit_serializers import QueueLimitsSerializer as QueueLimitsSerializer
from jobs.api.pagination import CURSOR_PATTERN
from jobs.api.representations import MAX_BATCH
from jobs.api.stats_serializers import CountsSerializer as CountsSerializer
from jobs.api.stats_serializers import DepthSerializer as DepthSerializer
from jobs.api.stats_serializers import QueueStatsSerializer as QueueStatsSerializer
from jobs.api.stats_serializers import SystemStatsSerializer as SystemStatsSerializer
from jobs.api.stats_serializers import ThroughputSerializer as ThroughputSerializer
from jobs.api.stats_serializers import WorkerSerializer as WorkerSerializer
from jobs.api.stats_serializers import WorkersSummarySerializer as WorkersSummarySerializer
from jobs.api.stats_serializers import WorkerStatsSerializer as WorkerStatsSerializer
from jobs.models import PRIORITY_MAX, PRIORITY_MIN, Backoff, Outcome, Status
from jobs.unique_terms import MAX_UNIQUE_KEY
from jobs.validation import (
    MAX_IDEMPOTENCY_KEY,
    MAX_NAME,
    MAX_RETRIES_LIMIT,
    QUEUE_NAME,
    QUEUE_NAME_PATTERN,
)
from zipline_site.durations import MAX_DURATION

DURATION_PATTERN = (
    r"^(0|([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h))*)$"
)
MAX_DURATION_SECONDS = int(MAX_DURATION)  # the one bound (zipline_site.durations), in the schema's whole seconds

# -- schema documentation -----------------------------------------------------------------------------------

DURATION_SCHEMA = {
    "oneOf": [
        {"type": "string", "pattern": DURATION_PATTERN, "example": "1s"},
        {"type": "number", "minimum": 0, "maximum": MAX_DURATION_SECONDS},
    ],
    "description": "A Go-style duration (`250ms`, `5s`, `1h30m`) or a number of seconds.",
}


@extend_schema_field(DURATION_SCHEMA)
class DurationInputField(serializers.Field):
    """A duration as submitted: Go-style string or seconds (documentation only)."""


@extend_schema_field({"type": "string", "example": "1m30s", "description": "A Go-style duration."})
class DurationOutputField(serializers.CharField):
    pass


@extend_schema_field({"type": "object", "additionalProperties": True})
class ObjectField(serializers.DictField):
    pass


@extend_schema_field(OpenApiTypes.ANY)
class AnyJSONField(serializers.JSONField):
    pass


@extend_schema_field({"type": "string", "pattern": CURSOR_PATTERN, "minLength": 47, "maxLength": 47})
class CursorField(serializers.CharField):
    """A page cursor; its form is checked (and a bad one refused naming ``cursor``) by the pagination."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=200, trim_whitespace=False, **kwargs)


@extend_schema_field({"type": "string", "pattern": QUEUE_NAME_PATTERN, "minLength": 1, "maxLength": 64})
class QueueNameField(serializers.RegexField):
    """A queue name, matched as a whole: never a name followed by a newline."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(QUEUE_NAME, trim_whitespace=False, **kwargs)


class RetryPolicyInputSerializer(serializers.Serializer):
    # Each field may be null, which means the same as leaving it out: the job type's default.
    max_retries = serializers.IntegerField(
        min_value=0,
        max_value=MAX_RETRIES_LIMIT,
        required=False,
        allow_null=True,
        help_text="Retries after the first attempt (default 3).",
    )
    backoff = serializers.ChoiceField(
        choices=Backoff.choices, required=False, allow_null=True, help_text="How delays grow (default exponential)."
    )
    initial_delay = DurationInputField(
        required=False, allow_null=True, help_text="Delay before the first retry (default 1s)."
    )
    max_delay = DurationInputField(
        required=False,
        allow_null=True,
        help_text="Longest delay between retries (default 1h); not below initial_delay.",
    )
    jitter = serializers.BooleanField(required=False, allow_null=True, help_text="Randomise delays (default true).")


class JobSubmitSerializer(serializers.Serializer):
    """`POST /api/v1/jobs`: one job. Only `type` is required; unknown fields are refused."""

    name = serializers.CharField(max_length=MAX_NAME, required=False, allow_blank=True, help_text="A label for people.")
    type = serializers.CharField(
        min_length=1, max_length=100, help_text="A registered job type: send_email, webhook, process_data, ..."
    )
    payload = ObjectField(
        required=False, help_text="The job's input, a JSON object (at most JQS_MAX_PAYLOAD_BYTES as JSON)."
    )
    priority = serializers.IntegerField(
        min_value=PRIORITY_MIN, max_value=PRIORITY_MAX, required=False, help_text="Higher runs first (default 0)."
    )
    queue = QueueNameField(required=False, help_text="Queue name (default `default`).")
    retry = RetryPolicyInputSerializer(
        required=False,
        allow_null=True,
        help_text="Retry policy; missing (or null) fields take the job type's defaults.",
    )
    schedule_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="RFC 3339 date-time with a zone; in the future makes the job scheduled.",
    )
    delay = DurationInputField(
        required=False, allow_null=True, help_text="Run after this long (instead of schedule_at)."
    )
    timeout = DurationInputField(required=False, allow_null=True, help_text="Longest run of one attempt.")
    idempotency_key = serializers.CharField(
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY,
        required=False,
        allow_null=True,
        help_text="Submitting again with a used key returns the first job (200) instead of creating one.",
    )
    group = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        help_text="Within a queue, groups take turns and may be limited (docs/flow-control.md); none by default.",
    )
    unique_for = DurationInputField(
        required=False,
        allow_null=True,
        help_text=(
            "Makes the job unique for this long (at most the retention of finished jobs): a submission "
            "with the same unique key meanwhile answers with this job, marked `duplicate`."
        ),
    )
    unique_key = serializers.CharField(
        min_length=1,
        max_length=MAX_UNIQUE_KEY,
        required=False,
        allow_null=True,
        help_text="What makes two jobs the same (with unique_for); default: the type, queue and a hash of the payload.",
    )
    unique_until = serializers.ChoiceField(
        choices=[("start", "start"), ("finish", "finish")],
        required=False,
        allow_null=True,
        help_text="When the job stops being unique before unique_for ends: once it started, or (default) finished.",
    )
    expires_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="RFC 3339 date-time in the future: not started by then, the job never runs and ends `expired`.",
    )
    expires_in = DurationInputField(
        required=False, allow_null=True, help_text="Expire this long after submission (instead of expires_at)."
    )
    depends_on = serializers.ListField(
        child=serializers.UUIDField(),
        max_length=1000,
        required=False,
        allow_null=True,
        help_text=(
            "Parent job ids: the job waits `waiting` (blocked) until they have all ended, then runs, or is "
            "cancelled if one failed (see on_parent_failure). With schedule_at or delay it is then scheduled until "
            "that time, or pending if it has passed (docs/workflows.md)."
        ),
    )
    on_parent_failure = serializers.ChoiceField(
        choices=[("cancel", "cancel"), ("run", "run")],
        required=False,
        allow_null=True,
        help_text="When a parent fails for good, is cancelled, expires or is deleted: `cancel` (default) or `run`.",
    )


class JobBatchSubmitSerializer(serializers.Serializer):
    jobs = serializers.ListField(
        child=JobSubmitSerializer(), min_length=1, max_length=MAX_BATCH, help_text=f"1 to {MAX_BATCH} jobs."
    )


class RetryPolicySerializer(serializers.Serializer):
    max_retries = serializers.IntegerField()
    backoff = serializers.ChoiceField(choices=Backoff.choices)
    initial_delay = DurationOutputField()
    max_delay = DurationOutputField()
    jitter = serializers.BooleanField()


class JobAttemptSerializer(serializers.Serializer):
    number = serializers.IntegerField(help_text="1 for the first attempt; unique per job (a manual retry continues).")
    outcome = serializers.ChoiceField(choices=Outcome.choices)
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField()
    duration = serializers.FloatField(allow_null=True, help_text="Seconds.")
    worker = serializers.CharField(allow_blank=True)
    error = serializers.CharField(allow_blank=True)
    after_manual_retry = serializers.BooleanField(help_text="The first attempt after a manual retry.")


class JobSummarySerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField(allow_blank=True)
    type = serializers.CharField()
    queue = serializers.CharField()
    priority = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Status.choices)
    attempts = serializers.IntegerField(help_text="Attempts started so far, since the last manual retry.")
    max_retries = serializers.IntegerField()
    schedule_at = serializers.DateTimeField(allow_null=True, help_text="When a scheduled or retrying job is due.")
    error = serializers.CharField(allow_blank=True, help_text="The last error (in lists: its first 500 characters).")
    cancel_requested = serializers.BooleanField(help_text="A running job was asked to stop.")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True, help_text="Not started by then, the job expires.")


class JobSerializer(JobSummarySerializer):
    """A job in full. `attempts` counts attempts started; `attempt_history` lists the finished ones."""

    payload = ObjectField()
    retry = RetryPolicySerializer()
    timeout = DurationOutputField(allow_null=True)
    result = AnyJSONField(allow_null=True, help_text="What the processor returned (completed jobs).")
    traceback = serializers.CharField(allow_blank=True)
    idempotency_key = serializers.CharField(allow_null=True)
    group = serializers.CharField(allow_blank=True, help_text='The job\'s group within its queue ("" for none).')
    unique_key = serializers.CharField(allow_null=True, help_text="The key of a unique job (null when not unique).")
    worker = serializers.CharField(allow_blank=True, help_text="The worker running or that last ran the job.")
    duration = serializers.FloatField(allow_null=True, help_text="Seconds from start to completion.")
    attempt_history = JobAttemptSerializer(many=True)
    depends_on = serializers.ListField(
        child=serializers.UUIDField(), help_text="The ids of the job's parents (docs/workflows.md); [] for none."
    )
    on_parent_failure = serializers.ChoiceField(
        choices=[("cancel", "cancel"), ("run", "run")],
        help_text="What the job does when a parent fails for good, is cancelled, expires or is deleted.",
    )
    batch = serializers.UUIDField(allow_null=True, help_text="The batch the job joined (null for none).")
    workflow = serializers.UUIDField(allow_null=True, help_text="The workflow it was submitted in (null for none).")
    # Not required: only a submission's answer has it. Generated clients keep one Job model for every answer.
    duplicate = serializers.BooleanField(
        required=False,
        help_text=(
            "In a submission's answer only: true when a unique job with the same key was held, and this is "
            "that job (nothing was written)."
        ),
    )


class JobPageSerializer(serializers.Serializer):
    results = JobSummarySerializer(many=True)
    next = serializers.URLField(allow_null=True, help_text="The next (older) page, or null on the last one.")
    previous = serializers.URLField(allow_null=True, help_text="The previous (newer) page, or null on the first one.")
    next_cursor = CursorField(
        allow_null=True, help_text="The `cursor` of the next page (what `next` links to), or null."
    )
    previous_cursor = CursorField(allow_null=True, help_text="The `cursor` of the previous page, or null.")


class BatchJobSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=Status.choices)
    duplicate = serializers.BooleanField(help_text="The job held this one's unique key; nothing was written for it.")


class BatchResultSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    jobs = BatchJobSerializer(many=True, help_text="In the order submitted; fetch a job for its details.")


class CommaListField(serializers.ListField):
    """A list query parameter given repeated (``?status=a&status=b``) or comma-separated (``?status=a,b``)."""

    def to_internal_value(self, data: Any) -> list[Any]:
        if isinstance(data, str):
            data = [data]
        items = [part for item in data if isinstance(item, str) for part in item.split(",")]
        return super().to_internal_value(items)


class JobListQuerySerializer(serializers.Serializer):
    """The list's query string. An empty value (``?type=``) is a value, and a wrong one: DRF would read
    it as absent, answering every job for ``?queue=`` instead of refusing it."""

    def to_internal_value(self, data: Any) -> Any:
        if hasattr(data, "getlist"):
            data = {key: data.getlist(key) if key == "status" else data.get(key) for key in data}
        return super().to_internal_value(data)

    status = CommaListField(
        child=serializers.ChoiceField(choices=Status.choices), required=False, help_text="One or more statuses."
    )
    queue = QueueNameField(required=False)
    type = serializers.RegexField(
        r"^[^\u0000]*$", max_length=100, required=False
    )  # DRF refuses NUL: so says the schema
    created_after = serializers.DateTimeField(required=False, help_text="Created at or after (RFC 3339).")
    created_before = serializers.DateTimeField(required=False, help_text="Created before (RFC 3339).")
    cursor = CursorField(required=False, help_text="A page's `next_cursor` or `previous_cursor`.")
    limit = serializers.IntegerField(min_value=1, max_value=500, default=50, help_text="Jobs per page (default 50).")


class ApiRouteSerializer(serializers.Serializer):
    path = serializers.CharField(help_text="`{name}` marks a path parameter.")
    methods = serializers.ListField(child=serializers.CharField())
    href = serializers.URLField(required=False, help_text="The route's URL, when it has no path parameter.")


class ApiIndexSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.CharField()
    docs = serializers.URLField(help_text="Swagger UI.")
    redoc = serializers.URLField(help_text="ReDoc.")
    schema = serializers.URLField(help_text="The OpenAPI 3 schema.")
    health = serializers.URLField()
    endpoints = ApiRouteSerializer(many=True)


class CheckSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=[("ok", "ok"), ("error", "error")])
    latency_ms = serializers.FloatField(required=False, help_text="When ok.")
    error = serializers.CharField(required=False, help_text="When not ok; only for a token or a staff session.")


class HealthWorkersSerializer(serializers.Serializer):
    running = serializers.BooleanField()
    count = serializers.IntegerField()


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=[("ok", "ok"), ("error", "error")])
    timestamp = serializers.DateTimeField()
    version = serializers.CharField()
    workers = HealthWorkersSerializer()
    redis = CheckSerializer()
    database = CheckSerializer()


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code: invalid, malformed_json, not_found, ...")
    message = serializers.CharField(help_text="One human-readable sentence.")
    details = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Messages per offending field (`retry.max_delay`, `jobs[3].type`); empty when no field is at fault.",
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()
