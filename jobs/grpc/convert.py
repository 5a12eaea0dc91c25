"""Messages to the service's arguments and rows to messages, in REST's shapes.

A submission becomes the same :class:`~jobs.validation.JobSpec` a REST body becomes, and
:mod:`jobs.validation` checks it, so both APIs accept and refuse the same jobs with the same field names.
Unset fields are left out, so the JobSpec's defaults apply as they do to a field missing from a REST body.
A job goes out with REST's fields and values (:mod:`jobs.api.representations`: the same summary, the same
masking of secrets); payloads and results as JSON text. Statistics go through ``json_format`` from the
service's dicts, whose keys the messages spell alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

from django.core.serializers.json import DjangoJSONEncoder
from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from jobs import masking
from jobs.api.representations import ERROR_SUMMARY_CHARS, retry_policy
from jobs.grpc.proto.zipline.v1 import zipline_pb2 as pb
from jobs.ids import JobId, parse_job_id
from jobs.models import Job, JobAttempt
from jobs.validation import InvalidJob, JobSpec
from zipline_site.durations import format_duration

M = TypeVar("M", bound=Message)

#: JobSpec's fields a message carries as they are (``optional``: set or not).
PLAIN_FIELDS = (
    "name",
    "queue",
    "priority",
    "delay",
    "timeout",
    "idempotency_key",
    "group",
    "unique_for",
    "unique_key",
    "unique_until",
    "expires_in",
)
RETRY_FIELDS = ("max_retries", "backoff", "initial_delay", "max_delay", "jitter")


def job_id(value: str) -> JobId:
    """The job id a request names; text that is no id is refused naming ``id`` (REST, where the id is part
    of the path, answers 404 for it: a malformed path names no resource)."""
    pk = parse_job_id(value)
    if pk is None:
        raise InvalidJob("id", f"{value[:60]!r} is not a job id (a UUID)")
    return pk


def spec_from_message(message: pb.JobSpec, prefix: str = "") -> JobSpec:
    """The JobSpec of a submission; a payload that is not JSON text is refused naming ``payload``."""
    values: dict[str, Any] = {name: getattr(message, name) for name in PLAIN_FIELDS if message.HasField(name)}
    values["type"] = message.type or None  # unset: "is required", as a REST body without one
    try:
        values["payload"] = json.loads(message.payload) if message.payload else {}
    except ValueError as exc:
        raise InvalidJob(f"{prefix}payload", f"is not JSON text: {exc}") from None
    for name in ("schedule_at", "expires_at"):
        if message.HasField(name):
            values[name] = getattr(message, name).ToDatetime(tzinfo=UTC)
    if message.HasField("retry"):
        values["retry"] = {name: getattr(message.retry, name) for name in RETRY_FIELDS if message.retry.HasField(name)}
    return JobSpec(**values)


def _timestamp(moment: datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, cls=DjangoJSONEncoder)


def job_summary(job: Job) -> pb.Job:
    """A job in a list: REST's summary (no payload, result, traceback or attempts)."""
    return pb.Job(
        id=str(job.pk),
        name=job.name,
        type=job.type,
        queue=job.queue,
        priority=job.priority,
        status=job.status,
        attempts=job.attempts,
        max_retries=job.max_retries,
        schedule_at=_timestamp(job.schedule_at),
        error=job.error[:ERROR_SUMMARY_CHARS],
        cancel_requested=job.cancel_requested,
        created_at=_timestamp(job.created_at),
        updated_at=_timestamp(job.updated_at),
        started_at=_timestamp(job.started_at),
        completed_at=_timestamp(job.completed_at),
        expires_at=_timestamp(job.expires_at),
    )


def job_detail(job: Job, reader: Any, attempts: Iterable[JobAttempt] = (), parents: Iterable[Any] = ()) -> pb.Job:
    """A job in full as ``reader`` may see it (:mod:`jobs.masking`), with its attempts (none for a new job)
    and its parents' ids."""
    message = job_summary(job)
    message.error = job.error
    message.payload = _json(masking.payload_for(reader, job)) or "{}"
    message.retry.CopyFrom(pb.RetryPolicy(**retry_policy(job)))
    result = _json(masking.result_for(reader, job))
    optional = {
        "timeout": format_duration(job.timeout) if job.timeout is not None else None,
        "result": result,
        "idempotency_key": job.idempotency_key,
        "group": job.group,
        "unique_key": job.unique_key,
        "duration": job.duration,
        "batch": None if job.batch_id is None else str(job.batch_id),
        "workflow": None if job.workflow_id is None else str(job.workflow_id),
    }
    for name, value in optional.items():
        if value is not None:
            setattr(message, name, value)
    message.traceback = job.traceback
    message.worker = job.worker
    message.attempt_history.extend(_attempt(a) for a in attempts)
    message.depends_on.extend(str(pk) for pk in parents)
    message.on_parent_failure = job.on_parent_failure
    return message


def _attempt(attempt: JobAttempt) -> pb.Attempt:
    return pb.Attempt(
        number=attempt.number,
        outcome=attempt.outcome,
        started_at=_timestamp(attempt.started_at),
        finished_at=_timestamp(attempt.finished_at),
        duration=attempt.duration,
        worker=attempt.worker,
        error=attempt.error,
        after_manual_retry=attempt.after_manual_retry,
    )


def from_dict(values: dict[str, Any], message: M) -> M:
    """``message`` filled from the service's dict (REST's JSON of it); None leaves a field unset."""
    json_format.ParseDict(values, message, ignore_unknown_fields=True)
    return message
