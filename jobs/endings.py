"""What happens when jobs end: their blocked children move on, in the same transaction.

Every code path that ends a job (the recorder's batched finish and a lost attempt in
:func:`jobs.states.record`, a cancel, a stop at release, an expiry, a deletion) calls
:func:`after_jobs_ended` inside the transaction that ended them. So a child is released in the
transaction of its last parent's ending and no release is ever lost to a crash between the two.

The common case, jobs with no children, costs one indexed query per batch (``job_dependency_parent``).

Two parents of one child ending at once in two transactions: each locks the child row
(``SELECT ... FOR UPDATE``, children in id order) before it reads the parents' states in a new
statement, so the second sees the first's committed ending: one of them releases the child, never
both and never neither. A submission that adds a child locks its parents' rows the same way
(:mod:`jobs.dependencies`), so a parent ending meanwhile either sees the new edge or is seen ended.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from jobs import batch_sql, prepared, states
from jobs.dispatch import dispatch
from jobs.lifecycle import FINISHED, Status, Verb
from jobs.models import Job, JobDependency, ParentFailure

DELETED = "deleted"  # how a child's reason names a parent whose row is gone
# What a child's row is read with when it is locked: enough to judge it and to push it to Redis.
_DISPATCHED = ("id", "queue", "priority", "type", "group", "schedule_at", "on_parent_failure")


def after_jobs_ended(ended: Iterable[uuid.UUID] | QuerySet[Any]) -> None:
    """Move on the blocked children of ``ended`` (ids, or a query of ids) whose parents have all ended.

    Call it inside the transaction that ended them. Ids of jobs that did not end are harmless: the
    parents' states are read again here. Given ids of jobs without children, it is one prepared
    query on the edges' parent index.
    """
    parents = ended if isinstance(ended, QuerySet) else list(ended)
    if not isinstance(parents, QuerySet) and not _any_children(parents):
        return
    _settle_all(JobDependency.objects.filter(parent_id__in=parents).values("child_id"))


# The recorder asks this after every batch it writes: one prepared statement, no ORM to compile.
_ANY_CHILD_PG = f"SELECT 1 FROM {JobDependency._meta.db_table} WHERE parent_id = ANY(%s::uuid[]) LIMIT 1"  # noqa: S608


def _any_children(parents: list[uuid.UUID]) -> bool:
    """Whether any of ``parents`` has a child (ended or not): the edges' parent index, one probe each."""
    if not parents:
        return False
    if batch_sql.is_postgres():
        return bool(prepared.fetch_all(_ANY_CHILD_PG, ["{" + ",".join(str(pk) for pk in parents) + "}"]))
    return JobDependency.objects.filter(parent_id__in=parents).exists()


def release_ready(children: Iterable[uuid.UUID]) -> None:
    """Settle those of ``children`` that are blocked and whose parents have all ended: released to
    pending (parents completed, or ``on_parent_failure`` "run"), or cancelled with the reason (a
    parent failed, was cancelled, expired or deleted). Released ids reach Redis when the transaction
    commits."""
    ids = sorted(set(children))
    if ids:
        _settle_all(ids)


def _settle_all(children: list[uuid.UUID] | QuerySet[Any]) -> None:
    """Settle ``children``, then the children of those cancelled (they have ended too), and so on."""
    while True:
        abandoned = _settle(children)
        if not abandoned:
            return
        children = JobDependency.objects.filter(parent_id__in=abandoned).values("child_id")


def _settle(children: list[uuid.UUID] | QuerySet[Any]) -> list[uuid.UUID]:
    """Release or cancel the children ready to move; returns the ids cancelled. Three statements
    when some are blocked: lock them (in id order), read their parents' states, move them."""
    locked = list(Job.objects.select_for_update().filter(pk__in=children).blocked().order_by("pk").only(*_DISPATCHED))
    if not locked:
        return []
    parents_of = _parents_of([job.pk for job in locked])
    release: list[Job] = []
    reasons: dict[str, list[uuid.UUID]] = defaultdict(list)
    for job in locked:
        verdict = _verdict(parents_of[job.pk], job.on_parent_failure)
        if verdict == "":
            release.append(job)
        elif verdict is not None:
            reasons[verdict].append(job.pk)
    _release(release)
    return _abandon(reasons)


def _parents_of(children: list[uuid.UUID]) -> dict[uuid.UUID, list[tuple[uuid.UUID, str]]]:
    """Each child's parents with their states (:data:`DELETED` for a row that is gone), in one query."""
    status = Job.objects.filter(pk=OuterRef("parent_id")).values("status")[:1]
    edges = (
        JobDependency.objects.filter(child_id__in=children)
        .annotate(parent_status=Subquery(status))
        .values_list("child_id", "parent_id", "parent_status")
    )
    parents: dict[uuid.UUID, list[tuple[uuid.UUID, str]]] = defaultdict(list)
    for child, parent, state in edges:
        parents[child].append((parent, state or DELETED))
    return parents


def _verdict(parents: list[tuple[uuid.UUID, str]], policy: str) -> str | None:
    """None: a parent has not ended; "": release; else the reason the child is cancelled."""
    if any(status != DELETED and status not in FINISHED for _, status in parents):
        return None
    failed = [(pk, status) for pk, status in parents if status != Status.COMPLETED]
    if not failed or policy == ParentFailure.RUN:
        return ""
    pk, status = min(failed)
    return f"cancelled: parent {pk} {status}"


def _release(jobs: list[Job]) -> None:
    if not jobs:
        return
    states.transition(Verb.UNBLOCK, Job.objects.filter(pk__in=[job.pk for job in jobs]), updated_at=timezone.now())
    transaction.on_commit(lambda: dispatch(jobs))


def _abandon(reasons: dict[str, list[uuid.UUID]]) -> list[uuid.UUID]:
    now = timezone.now()
    abandoned: list[uuid.UUID] = []
    for reason, ids in reasons.items():
        states.transition(Verb.ABANDON, Job.objects.filter(pk__in=ids), error=reason, completed_at=now, updated_at=now)
        abandoned.extend(ids)
    return abandoned
