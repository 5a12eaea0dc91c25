"""Workflows: many jobs and their dependencies created in one transaction, all or none, and read back.

A workflow's jobs are written like a batch (one COPY for the rows, one for the edges): a job with
parents is inserted blocked, the others are pushed to Redis on commit. Parents outside the workflow
(stored job ids) are locked as for one job (:mod:`jobs.dependencies`), and a job whose parents were
all stored and have all ended is settled at once. A workflow's status is derived from its jobs'.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from jobs import dependencies, endings, insert
from jobs.dispatch import dispatch
from jobs.ids import parse_job_id
from jobs.lifecycle import FINISHED, Status
from jobs.models import Batch, Job, JobDependency, Workflow
from jobs.service.errors import WorkflowNotFound
from jobs.service.submission import storing
from jobs.validation import InvalidJob, validate
from jobs.workflow_spec import Step, parse_steps


def create_workflow(jobs: Any, name: str = "", *, submitted_by: Any = None, now: datetime | None = None) -> Workflow:
    """Create a workflow of ``jobs`` (objects with ``ref``, ``depends_on`` naming refs or stored job
    ids, and a job's fields); returns its row. :class:`InvalidJob` names the job and the field, and
    nothing is written."""
    now = now or timezone.now()
    if not isinstance(name, str) or len(name) > 200:
        raise InvalidJob("name", "must be a string of at most 200 characters")
    steps = parse_steps(jobs)
    rows, payloads = _rows(steps, now)
    flow = Workflow(name=name, created_at=now, submitted_by=submitted_by)
    for row in rows:
        row["workflow_id"] = flow.pk
        row["submitted_by_id"] = None if submitted_by is None else submitted_by.pk
    return storing(lambda: _write(flow, steps, rows, payloads))


def _rows(steps: list[Step], now: datetime) -> tuple[list[dict[str, Any]], list[str]]:
    rows, payloads = [], []
    for step in steps:
        try:
            valid = validate(step.spec, now)
            dependencies.apply_terms(step.spec, valid, bool(step.local or step.external))
        except InvalidJob as exc:
            raise InvalidJob(f"jobs[{step.index}].{exc.field}", exc.message) from None
        # A microsecond apart, so that the workflow's jobs read back in the order submitted.
        row = insert.new_row(valid, now + timedelta(microseconds=step.index))
        row["workflow_ref"] = step.ref
        rows.append(row)
        payloads.append(valid.payload_json)
    return rows, payloads


def _write(flow: Workflow, steps: list[Step], rows: list[dict[str, Any]], payloads: list[str]) -> Workflow:
    ids = [row["id"] for row in rows]
    external = {ids[s.index]: s.external for s in steps if s.external}
    with transaction.atomic():
        dependencies.require_parents(external, {ids[s.index]: f"jobs[{s.index}].depends_on" for s in steps})
        flow.save(force_insert=True)
        insert.insert(rows, payloads)
        edges = [(ids[s.index], ids[p]) for s in steps for p in s.local]
        edges += [(child, parent) for child, parents in external.items() for parent in parents]
        dependencies.insert_edges(edges)
        roots = [job for job, s in zip(insert.instances(rows), steps, strict=True) if not (s.local or s.external)]
        if roots:
            transaction.on_commit(lambda: dispatch(roots))
        if external:
            endings.release_ready(list(external))
    return flow


@dataclass(frozen=True)
class WorkflowView:
    """A workflow as read: its row, its status and counters, and its jobs with their parents."""

    workflow: Workflow
    status: str
    counts: dict[str, int]
    jobs: list[Job]
    parents: dict[uuid.UUID, list[uuid.UUID]]


def workflow_status(statuses: list[str]) -> str:
    """``running`` while a job has not ended; then ``completed`` if every job completed, else ``failed``."""
    if any(s not in FINISHED for s in statuses):
        return "running"
    return "completed" if all(s == Status.COMPLETED for s in statuses) else "failed"


def get_workflow(workflow_id: object) -> WorkflowView:
    """A workflow with its jobs (in submission order) and their states; :class:`WorkflowNotFound`."""
    pk = parse_job_id(workflow_id)
    flow = None if pk is None else Workflow.objects.filter(pk=pk).first()
    if flow is None:
        raise WorkflowNotFound(workflow_id)
    jobs = list(
        Job.objects.filter(workflow=flow)
        .order_by("created_at", "pk")
        .only("id", "name", "type", "queue", "status", "workflow_ref", "error", "created_at", "completed_at")
    )
    parents: dict[uuid.UUID, list[uuid.UUID]] = {}
    for child, parent in JobDependency.objects.filter(child__workflow=flow).values_list("child_id", "parent_id"):
        parents.setdefault(child, []).append(parent)
    statuses = [job.status for job in jobs]
    counts = {str(s): 0 for s in Status} | dict(Counter(statuses))
    return WorkflowView(flow, workflow_status(statuses), {"total": len(jobs), **counts}, jobs, parents)


@dataclass(frozen=True)
class Relations:
    """A job's parents and children (id, name or ref, status; a missing parent has status None), and
    its workflow: what the job's page in the admin and the dashboard links to."""

    parents: list[tuple[uuid.UUID, str, str | None]]
    children: list[tuple[uuid.UUID, str, str | None]]
    workflow: Workflow | None
    batch: Batch | None = None


def parent_ids(job: Job) -> list[uuid.UUID]:
    """The ids of the job's parents, in id order (one indexed query)."""
    return list(JobDependency.objects.filter(child_id=job.pk).order_by("parent_id").values_list("parent_id", flat=True))


def job_relations(job: Job) -> Relations:
    parent_ids = list(JobDependency.objects.filter(child_id=job.pk).values_list("parent_id", flat=True))
    child_ids = list(JobDependency.objects.filter(parent_id=job.pk).values_list("child_id", flat=True))
    known = {
        pk: (ref or name or typ, status)
        for pk, ref, name, typ, status in Job.objects.filter(pk__in=parent_ids + child_ids).values_list(
            "pk", "workflow_ref", "name", "type", "status"
        )
    }

    def rows(ids: list[uuid.UUID]) -> list[tuple[uuid.UUID, str, str | None]]:
        return [(pk, *known.get(pk, ("deleted", None))) for pk in ids]

    flow = None if job.workflow_id is None else Workflow.objects.filter(pk=job.workflow_id).first()
    batch = None if job.batch_id is None else Batch.objects.filter(pk=job.batch_id).first()
    return Relations(rows(parent_ids), rows(child_ids), flow, batch)


def depths(view: WorkflowView) -> dict[uuid.UUID, int]:
    """Each job's depth in its workflow (the longest chain of its parents within the workflow): how
    far the dashboard indents it. Kahn's order, so a chain of 10,000 needs no recursion."""
    ids = {job.pk for job in view.jobs}
    inner = {pk: [p for p in view.parents.get(pk, []) if p in ids] for pk in ids}
    children: dict[uuid.UUID, list[uuid.UUID]] = {pk: [] for pk in ids}
    for child, parents in inner.items():
        for parent in parents:
            children[parent].append(child)
    left = {pk: len(parents) for pk, parents in inner.items()}
    found = dict.fromkeys(ids, 0)
    ready = [pk for pk, n in left.items() if n == 0]
    while ready:
        pk = ready.pop()
        for child in children[pk]:
            found[child] = max(found[child], found[pk] + 1)
            left[child] -= 1
            if left[child] == 0:
                ready.append(child)
    return found
