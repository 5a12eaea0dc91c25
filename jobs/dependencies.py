"""A job's parents: ``depends_on`` checked at submit, the edges written, and the parents' results read.

A job submitted with parents is inserted ``waiting`` (shown as blocked) with one
:class:`~jobs.models.JobDependency` row per parent; :mod:`jobs.endings` moves it on when they have
all ended. Parents already stored are locked first (:func:`lock_parents`), so a parent cannot end
unseen between the check and the commit: a dependent submitted after its parent ended is settled at
submit, by the same code a parent's ending runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from django.db import connection

from jobs import batch_sql
from jobs.ids import parse_job_id
from jobs.lifecycle import Verb, target
from jobs.models import Job, JobDependency, ParentFailure
from jobs.validation import InvalidJob, JobSpec, ValidJob

MAX_PARENTS = 1000
POLICIES = tuple(ParentFailure.values)


def check_policy(value: Any, field: str = "on_parent_failure") -> str:
    """``on_parent_failure``: "cancel" (the default) or "run"."""
    if value is None:
        return ParentFailure.CANCEL
    if value not in POLICIES:
        raise InvalidJob(field, f"{value!r} is not one of {', '.join(POLICIES)}")
    return str(value)


def check_list(value: Any, field: str = "depends_on") -> list[Any]:
    """A list of at most :data:`MAX_PARENTS` entries."""
    if not isinstance(value, list | tuple):
        raise InvalidJob(field, "must be a list of job ids")
    if len(value) > MAX_PARENTS:
        raise InvalidJob(field, f"has {len(value)} parents; at most {MAX_PARENTS}")
    return list(value)


def parent_ids(value: Any, field: str = "depends_on") -> list[uuid.UUID]:
    """The distinct job ids of ``depends_on``, in order; a value that is no id names itself."""
    ids: dict[uuid.UUID, None] = {}
    for index, raw in enumerate(check_list(value, field)):
        pk = parse_job_id(raw) if isinstance(raw, str | uuid.UUID) else None
        if pk is None:
            raise InvalidJob(f"{field}[{index}]", f"{raw!r} is not a job id")
        ids[pk] = None
    return list(ids)


def apply_terms(spec: JobSpec, valid: ValidJob, parents: bool) -> None:
    """Put a job's dependency columns into its row's fields: blocked when it has ``parents``."""
    policy = check_policy(spec.on_parent_failure)
    if policy != ParentFailure.CANCEL:
        valid.fields["on_parent_failure"] = policy
    if not parents:
        return
    # A due time (schedule_at, delay) stays in schedule_at: once its parents have all ended, the job is
    # scheduled until then, or pending if it has passed (jobs.endings).
    valid.fields["status"] = target(Verb.BLOCK)


def job_terms(spec: JobSpec, valid: ValidJob) -> list[uuid.UUID]:
    """The parents of a job submitted alone (ids), its row's fields set accordingly."""
    parents = [] if spec.depends_on is None else parent_ids(spec.depends_on)
    apply_terms(spec, valid, bool(parents))
    return parents


def lock_parents(ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    """Lock the stored parents' rows until the submission commits; returns the ids that name no job.

    ``FOR NO KEY UPDATE``: the lock a parent's ending takes to change its row, so whichever comes
    second waits for the other's commit and then sees it.
    """
    if not ids:
        return []
    found = set(
        Job.objects.select_for_update(no_key=True).filter(pk__in=ids).order_by("pk").values_list("pk", flat=True)
    )
    return [pk for pk in ids if pk not in found]


def require_parents(parents: dict[Any, list[uuid.UUID]], field_of: dict[Any, str]) -> None:
    """Lock every parent of ``parents`` (child key -> parent ids); a missing one is :class:`InvalidJob`
    naming the first child's field (``field_of[child]``) that lists it."""
    missing = set(lock_parents(sorted({p for ps in parents.values() for p in ps})))
    for child, ids in parents.items():
        for pk in ids:
            if pk in missing:
                raise InvalidJob(field_of[child], f"job {pk} does not exist")


def insert_edges(pairs: Sequence[tuple[uuid.UUID, uuid.UUID]]) -> None:
    """Write (child, parent) edges: one COPY on PostgreSQL (a workflow may have tens of thousands), and
    mark the parents ``has_children``. A stored parent's row is locked already (:func:`lock_parents`),
    so a recorder finishing it meanwhile waits for this commit and reads the mark (jobs.endings)."""
    if not pairs:
        return
    table = JobDependency._meta.db_table
    parents = sorted({parent for _, parent in pairs})
    if not batch_sql.is_postgres():
        JobDependency.objects.bulk_create([JobDependency(child_id=c, parent_id=p) for c, p in pairs])
    else:
        with (
            connection.cursor() as cursor,
            cursor.cursor.copy(f"COPY {table} (child_id, parent_id) FROM STDIN") as copy,
        ):
            for pair in pairs:
                copy.write_row(pair)
    Job.objects.filter(pk__in=parents, has_children=False).update(has_children=True)


def parent_results(job_id: Any) -> dict[str, Any]:
    """A job's parents' results, keyed by parent id, and also by name and by workflow ref when they
    have one (an id key always wins; of two parents with one name, either may be the one given)."""
    parents = JobDependency.objects.filter(child_id=job_id).values("parent_id")
    rows = Job.objects.filter(pk__in=parents).values_list("pk", "name", "workflow_ref", "result")
    by_name: dict[str, Any] = {}
    by_id: dict[str, Any] = {}
    for pk, name, ref, result in rows:
        by_id[str(pk)] = result
        for key in (name, ref):
            if key:
                by_name[key] = result
    return {**by_name, **by_id}
