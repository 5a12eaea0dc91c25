"""ZipLine's Python API: ``enqueue``, ``enqueue_many``, ``get``, ``cancel``, ``retry``, ``run_now``, and
``workflow`` with its shapes ``chain`` and ``group`` (docs/workflows.md).

The public face of :mod:`jobs.service`, which does the work for every caller (this one, the REST
API, the admin and the dashboard), so all of them answer alike.

Rows are written in the caller's transaction; ids reach Redis when it commits (``on_commit``),
so a job submitted inside a transaction that rolls back never runs. Outside a transaction each
call commits before it returns.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from jobs.models import Job, Workflow
from jobs.service import (
    cancel,
    cancel_batch,
    close_batch,
    create_batch,
    create_workflow,
    get_batch,
    get_workflow,
    retry,
    run_now,
)
from jobs.service import find_job as get
from jobs.service import submit as enqueue_idempotent
from jobs.service import submit_many as enqueue_many
from jobs.validation import InvalidJob, JobSpec
from jobs.workflow_spec import chain, group

# JobSpec's fields other than the two every job has
SPEC_OPTIONS = frozenset(field.name for field in dataclasses.fields(JobSpec)) - {"type", "payload"}

__all__ = [
    "InvalidJob",
    "JobSpec",
    "cancel",
    "cancel_batch",
    "close_batch",
    "create_batch",
    "chain",
    "enqueue",
    "enqueue_idempotent",
    "enqueue_many",
    "get",
    "get_batch",
    "get_workflow",
    "group",
    "retry",
    "run_now",
    "workflow",
]


def enqueue(type: str, payload: dict[str, Any] | None = None, **options: Any) -> Job:  # noqa: A002 - the seed's name
    """Submit one job and return its row. Raises :class:`InvalidJob` and writes nothing on bad input.

    ``options`` are :class:`JobSpec`'s fields, by name: ``name``, ``queue``, ``priority``, ``schedule_at``,
    ``delay``, ``retry``, ``timeout``, ``idempotency_key``, ``group``, ``unique_for``, ``unique_key``,
    ``unique_until``, ``expires_at``, ``expires_in``, ``depends_on`` (parent job ids: the job waits
    blocked until they have all ended), ``on_parent_failure`` ("cancel" or "run"); another is an :class:`InvalidJob` naming it.
    A repeated ``idempotency_key``, or a held unique key (``unique_for``, :mod:`jobs.uniqueness`), returns
    the earlier job and writes nothing; for the latter ``job.duplicate`` is True (see
    :func:`enqueue_idempotent` to learn which happened). Jobs of one ``group`` take turns with the queue's
    other groups and share its group limits (docs/flow-control.md).
    """
    unknown = sorted(set(options) - SPEC_OPTIONS)
    if unknown:
        raise InvalidJob(unknown[0], "unknown option")
    spec = JobSpec(type, {} if payload is None else payload, **options)
    return enqueue_idempotent(spec)[0]


def workflow(jobs: list[dict[str, Any]], name: str = "") -> Workflow:
    """Create jobs with dependencies between them, all or none: each a dict of a job's fields with a
    ``ref``, its ``depends_on`` naming refs of the workflow (or stored job ids). ``chain`` and ``group``
    build the lists. Raises :class:`InvalidJob` naming the job and the field (``jobs[2].depends_on``)."""
    return create_workflow(jobs, name)
