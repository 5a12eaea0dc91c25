"""What the API reads and writes, in two halves.

* Representations: plain functions that turn rows into the JSON the API answers with. They are
  on the hot path (every submission answers with its job), so they build dicts directly.
* Serializer classes: the documentation of those shapes (and of the request bodies) for the OpenAPI
  schema. A test validates real responses against the schema built from them, so the two cannot drift.

Submissions are not validated by a serializer but by :mod:`jobs.validation`, the same code the Python
API runs, so both give the same answer; :func:`spec_from_body` only maps the JSON object onto a JobSpec.
Only the list endpoint's query string is validated here (:class:`JobListQuerySerializer`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobs import masking
from jobs.api.pagination import CURSOR_PATTERN
from jobs.models import PRIORITY_MAX, PRIORITY_MIN, Backoff, Job, JobAttempt, Outcome, Status
from jobs.unique_terms import MAX_UNIQUE_KEY
from jobs.validation import (
    MAX_IDEMPOTENCY_KEY,
    MAX_NAME,
    MAX_RETRIES_LIMIT,
    QUEUE_NAME,
    QUEUE_NAME_PATTERN,
    InvalidJob,
    JobSpec,
)
from zipline_site.durations import format_duration

MAX_BATCH = 1000
SPEC_FIELDS = frozenset(f.name for f in dataclasses.fields(JobSpec))
ERROR_SUMMARY_CHARS = 500
DURATION_PATTERN = (
    r"^(0|([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h))*)$"
)
MAX_DURATION_SECONDS = 10 * 365 * 86400

# -- request bodies -> JobSpec ------------------------------------------------------------------------


def spec_from_body(data: Any, prefix: str = "") -> JobSpec:
    """Map one submission object onto a :class:`JobSpec`; unknown fields are refused by name."""
    if not isinstance(data, dict):
        raise InvalidJob(prefix or "body", "must be a JSON object with at least a type")
    unknown = [key for key in data if key not in SPEC_FIELDS]
    if unknown:
        field = f"{prefix}.{sorted(unknown)[0]}" if prefix else sorted(unknown)[0]
        raise InvalidJob(field, "unknown field")
    values = dict(data)
    values.setdefault("type", None)  # missing: "is required" (an empty string is a wrong value)
    return JobSpec(**values)


def batch_specs(data: Any) -> list[JobSpec]:
    """The specs of a batch body ``{"jobs": [...]}`` (1 to :data:`MAX_BATCH`)."""
    if not isinstance(data, dict):
        raise InvalidJob("body", 'must be a JSON object: {"jobs": [...]}')
    unknown = sorted(key for key in data if key != "jobs")
    if unknown:
        raise InvalidJob(unknown[0], "unknown field")
    jobs = data.get("jobs")
    if not isinstance(jobs, list) or not 1 <= len(jobs) <= MAX_BATCH:
        raise InvalidJob("jobs", f"must be a list of 1 to {MAX_BATCH} jobs")
    return [spec_from_body(raw, f"jobs[{index}]") for index, raw in enumerate(jobs)]


# -- representations -------------------------------------------------------------------------------------


def iso(moment: datetime | None) -> str | None:
    """RFC 3339 in UTC with a ``Z``, as DRF renders date-times."""
    if moment is None:
        return None
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def retry_policy(job: Job) -> dict[str, Any]:
    return {
        "max_retries": job.max_retries,
        "backoff": job.backoff,
        "initial_delay": format_duration(job.initial_delay),
        "max_delay": format_duration(job.max_delay),
        "jitter": job.jitter,
    }


def attempt_data(attempt: JobAttempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "outcome": attempt.outcome,
        "started_at": iso(attempt.started_at),
        "finished_at": iso(attempt.finished_at),
        "duration": attempt.duration,
        "worker": attempt.worker,
        "error": attempt.error,
        "after_manual_retry": attempt.after_manual_retry,
    }


def job_summary(job: Job) -> dict[str, Any]:
    """A job in a list: no payload, result, traceback or attempts (fetch the job for those)."""
    return {
        "id": str(job.pk),
        "name": job.name,
        "type": job.type,
        "queue": job.queue,
        "priority": job.priority,
        "status": job.status,
        "attempts": job.attempts,
        "max_retries": job.max_retries,
        "schedule_at": iso(job.schedule_at),
        "error": job.error[:ERROR_SUMMARY_CHARS],
        "cancel_requested": job.cancel_requested,
        "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at),
        "started_at": iso(job.started_at),
        "completed_at": iso(job.completed_at),
        "expires_at": iso(job.expires_at),
    }


def job_detail(job: Job, reader: Any, attempts: Iterable[JobAttempt] = ()) -> dict[str, Any]:
    """A job in full as ``reader`` may see it (:mod:`jobs.masking`), with its attempts (pass none for a
    job just created: it has none)."""
    return {
        **job_summary(job),
        "payload": masking.payload_for(reader, job),
        "retry": retry_policy(job),
        "timeout": format_duration(job.timeout) if job.timeout is not None else None,
        "result": masking.result_for(reader, job),
        "error": job.error,
        "traceback": job.traceback,
        "idempotency_key": job.idempotency_key,
        "unique_key": job.unique_key,
        "worker": job.worker,
        "duration": job.duration,
        "attempt_history": [attempt_data(a) for a in attempts],
    }


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
    unique_key = serializers.CharField(allow_null=True, help_text="The key of a unique job (null when not unique).")
    worker = serializers.CharField(allow_blank=True, help_text="The worker running or that last ran the job.")
    duration = serializers.FloatField(allow_null=True, help_text="Seconds from start to completion.")
    attempt_history = JobAttemptSerializer(many=True)
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
    type = serializers.CharField(max_length=100, required=False)
    created_after = serializers.DateTimeField(required=False, help_text="Created at or after (RFC 3339).")
    created_before = serializers.DateTimeField(required=False, help_text="Created before (RFC 3339).")
    cursor = CursorField(required=False, help_text="A page's `next_cursor` or `previous_cursor`.")
    limit = serializers.IntegerField(min_value=1, max_value=500, default=50, help_text="Jobs per page (default 50).")


class CountsSerializer(serializers.Serializer):
    pending = serializers.IntegerField()
    scheduled = serializers.IntegerField()
    running = serializers.IntegerField()
    retrying = serializers.IntegerField()
    completed = serializers.IntegerField()
    failed = serializers.IntegerField()
    cancelled = serializers.IntegerField()
    expired = serializers.IntegerField()


class ThroughputSerializer(serializers.Serializer):
    window_seconds = serializers.IntegerField(help_text="Always 60: the last minute.")
    completed = serializers.IntegerField(help_text="Attempts that completed their job in the window.")
    failed = serializers.IntegerField(help_text="Attempts that failed in the window (never also counted as completed).")
    total = serializers.IntegerField(help_text="completed + failed.")
    per_second = serializers.FloatField(help_text="total / 60.")


class DepthSerializer(serializers.Serializer):
    ready = serializers.IntegerField(help_text="Ids waiting in Redis to be claimed.")
    delayed = serializers.IntegerField(help_text="Ids waiting for their due time.")
    leased = serializers.IntegerField(help_text="Ids claimed by workers now.")


class QueueStatsSerializer(serializers.Serializer):
    name = serializers.CharField()
    paused = serializers.BooleanField()
    counts = CountsSerializer(help_text="Jobs by status (database).")
    total = serializers.IntegerField()
    throughput = ThroughputSerializer()
    depth = DepthSerializer(help_text="Redis structures of the queue.")


class WorkersSummarySerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Live worker processes.")
    busy = serializers.IntegerField(help_text="Jobs running now.")
    concurrency = serializers.IntegerField(help_text="Jobs that can run at once.")
    utilization = serializers.FloatField(help_text="busy / concurrency.")
    processed = serializers.IntegerField(help_text="Attempts completed or failed since the workers started.")
    failed = serializers.IntegerField(help_text="Attempts failed since the workers started (part of processed).")


class SystemStatsSerializer(serializers.Serializer):
    counts = CountsSerializer()
    total = serializers.IntegerField()
    throughput = ThroughputSerializer()
    queues = QueueStatsSerializer(many=True)
    workers = WorkersSummarySerializer()
    started_at = serializers.DateTimeField(allow_null=True, help_text="When this API process started.")
    uptime_seconds = serializers.FloatField()
    version = serializers.CharField()


class WorkerSerializer(serializers.Serializer):
    id = serializers.CharField()
    hostname = serializers.CharField(allow_blank=True)
    pid = serializers.IntegerField()
    queues = serializers.ListField(child=serializers.CharField())
    concurrency = serializers.IntegerField()
    busy = serializers.IntegerField()
    processed = serializers.IntegerField()
    failed = serializers.IntegerField()
    started_at = serializers.DateTimeField(allow_null=True)
    heartbeat_at = serializers.DateTimeField(allow_null=True)


class WorkerStatsSerializer(serializers.Serializer):
    workers = WorkerSerializer(many=True)
    totals = WorkersSummarySerializer()


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
