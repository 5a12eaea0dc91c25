"""What the API reads and answers, as plain functions: a submission's JSON onto a :class:`JobSpec`,
and rows into the JSON of a response. They are on the hot path (every submission answers with its job),
so they build dicts directly; :mod:`jobs.api.serializers` documents the same shapes for the schema, and
a test validates real responses against it, so the two cannot drift.

Submissions are not validated here but by :mod:`jobs.validation`, the same code the Python API runs,
so both give the same answer; :func:`spec_from_body` only maps the JSON object onto a JobSpec.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from jobs import masking
from jobs.models import Job, JobAttempt
from jobs.service.batches import BatchView
from jobs.service.workflows import WorkflowView
from jobs.validation import InvalidJob, JobSpec
from zipline_site.durations import format_duration

MAX_BATCH = 1000
SPEC_FIELDS = frozenset(f.name for f in dataclasses.fields(JobSpec))
ERROR_SUMMARY_CHARS = 500

# -- request bodies -> JobSpec ------------------------------------------------------------------------


def spec_from_body(data: Any, prefix: str = "") -> JobSpec:
    """Map one submission object onto a :class:`JobSpec`; unknown fields are refused by name."""
    if not isinstance(data, dict):
        raise InvalidJob(prefix or "body", "must be a JSON object with at least a type")
    if not SPEC_FIELDS.issuperset(data):  # one C call for each job of a batch
        unknown = min(key for key in data if key not in SPEC_FIELDS)
        raise InvalidJob(f"{prefix}.{unknown}" if prefix else unknown, "unknown field")
    return JobSpec(**{"type": None, **data})  # missing: "is required" (an empty string is a wrong value)


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


def job_detail(
    job: Job, reader: Any, attempts: Iterable[JobAttempt] = (), parents: Iterable[Any] = ()
) -> dict[str, Any]:
    """A job in full as ``reader`` may see it (:mod:`jobs.masking`), with its attempts (pass none for a
    job just created: it has none) and its parents' ids, and what else ties it to others."""
    return {
        **job_summary(job),
        "payload": masking.payload_for(reader, job),
        "retry": retry_policy(job),
        "timeout": format_duration(job.timeout) if job.timeout is not None else None,
        "result": masking.result_for(reader, job),
        "error": job.error,
        "traceback": job.traceback,
        "idempotency_key": job.idempotency_key,
        "group": job.group,
        "unique_key": job.unique_key,
        "worker": job.worker,
        "duration": job.duration,
        "attempt_history": [attempt_data(a) for a in attempts],
        "depends_on": [str(pk) for pk in parents],
        "on_parent_failure": job.on_parent_failure,
        "batch": None if job.batch_id is None else str(job.batch_id),
        "workflow": None if job.workflow_id is None else str(job.workflow_id),
    }


def workflow_detail(view: WorkflowView) -> dict[str, Any]:
    """A workflow: status, counters, and its jobs with their states and parents."""
    flow = view.workflow
    return {
        "id": str(flow.pk),
        "name": flow.name,
        "created_at": iso(flow.created_at),
        "status": view.status,
        "counts": view.counts,
        "jobs": [
            {
                "id": str(job.pk),
                "ref": job.workflow_ref,
                "name": job.name,
                "type": job.type,
                "queue": job.queue,
                "status": job.status,
                "error": job.error[:ERROR_SUMMARY_CHARS],
                "depends_on": [str(p) for p in view.parents.get(job.pk, [])],
            }
            for job in view.jobs
        ],
    }


def batch_detail(view: BatchView) -> dict[str, Any]:
    """A batch: status, exact counters, and the callback jobs it enqueued."""
    batch = view.batch
    return {
        "id": str(batch.pk),
        "name": batch.name,
        "created_at": iso(batch.created_at),
        "status": view.status,
        "closed": batch.closed,
        "finished_at": iso(batch.finished_at),
        "counts": view.counts,
        "callbacks": dict(batch.callbacks),
    }
