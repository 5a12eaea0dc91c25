"""What happens when jobs end: their batches count them and their blocked children move on, in the same
transaction; and once it commits, the API processes are told (a request waiting on one of them answers at
once: ``GET /api/v1/jobs/{id}?wait=30s``, :mod:`jobs.service.watch`).

Every code path that ends a job (the recorder's batched finish and a lost attempt in
:func:`jobs.states.record`, a cancel, a stop at release, an expiry, a deletion) calls
:func:`after_jobs_ended` inside the transaction that ended them. So a child is released in the
transaction of its last parent's ending and no release is ever lost to a crash between the two.

The common case, jobs with no children and no batch, costs the recorder nothing more: its finish
statement returns each job's batch and ``has_children`` mark. The other paths ask one indexed query per
batch (``job_dependency_parent``).
Jobs with children pay one more on PostgreSQL (:func:`jobs.release_sql.release_children`): their
blocked children locked, and those whose parents have all completed released; a chain's step pays
nothing else.

Two parents of one child ending at once in two transactions: each locks the child row
(``FOR UPDATE``, children in id order). A child that statement did not release (it read a parent as
not ended, perhaps one whose ending committed while it waited for the lock) is judged again in a new
statement, which sees every ending committed before the lock was granted: one of them releases the
child, never both (the release is conditional on the row still being blocked) and never neither. A submission that adds a child locks its parents' rows the same way
(:mod:`jobs.dependencies`), so a parent ending meanwhile either sees the new edge or is seen ended.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.utils import timezone

from jobs import batch_sql, batches, prepared, release_sql, states
from jobs.broker import BrokerUnavailable, get_broker
from jobs.dispatch import dispatch
from jobs.lifecycle import FINISHED, Status, Verb
from jobs.models import Job, JobDependency, ParentFailure

logger = logging.getLogger("zipline.endings")
DELETED = "deleted"  # how a child's reason names a parent whose row is gone


Ties = dict[uuid.UUID, tuple[uuid.UUID | None, bool]]  # job -> (its batch, whether it has children)


def after_jobs_ended(ended: Iterable[uuid.UUID], ties: Ties | None = None) -> None:
    """Account for jobs that just ended: their batches (:mod:`jobs.batches`) and their blocked children
    whose parents have all ended. Call it inside the transaction that ended them, with exactly the
    jobs it ended (a batch counts each once), and their ``ties`` when the statement that ended them
    read them (the recorder's finish): then jobs with neither cost no statement; else one.
    """
    ids = list(ended)
    if not ids:
        return
    announce(ids)
    while ids:  # the children cancelled have ended too: their own batches and children follow
        ids = _account(ids, ties)
        ties = None


def _account(ids: list[uuid.UUID], ties: Ties | None = None) -> list[uuid.UUID]:
    """Count ``ids`` in their batches and settle their blocked children; returns the children cancelled.
    Jobs without children stop there. On PostgreSQL one statement then locks the children of those
    that have some and does the common release (every parent completed: a chain's step); only the
    children it left need another (:func:`_settle`)."""
    if ties is None:
        per_batch, any_children = _lookup(ids)
        parents = ids
    else:
        per_batch = dict(Counter(batch for batch, _ in ties.values() if batch is not None))
        parents = [pk for pk in ids if ties[pk][1]]
        any_children = bool(parents)
    if per_batch:
        batches.jobs_ended(per_batch)
    if not any_children:
        return []
    found = release_sql.release_children(parents, timezone.now())
    if found is None:
        return _settle(_lock_children_of(parents))
    released, locked = found
    if released:
        transaction.on_commit(lambda: dispatch(released))  # schedule_at as released (release_sql)
    return _settle(locked) if locked else []


# The recorder asks this after every batch of outcomes it writes: the ended jobs' batches, and
# whether any of them has a child. One statement built once, no ORM to compile (not a prepared
# statement: jobs.prepared keeps those to the claim, the finish and the single INSERT).
_JOB = Job._meta.db_table
_EDGES = JobDependency._meta.db_table
_LOOKUP_PG = (
    f"SELECT batch_id, count(*) FROM {_JOB} WHERE id = ANY(%s::uuid[]) AND batch_id IS NOT NULL "  # noqa: S608
    f"GROUP BY batch_id UNION ALL "
    f"SELECT NULL, count(*) FROM (SELECT 1 FROM {_EDGES} WHERE parent_id = ANY(%s::uuid[]) LIMIT 1) AS child"
)


def _lookup(ids: list[uuid.UUID]) -> tuple[dict[uuid.UUID, int], bool]:
    """How many of ``ids`` each batch holds, and whether any of them has a child (the indexes: the
    jobs' primary key, the edges' parent index)."""
    if batch_sql.is_postgres():
        array = "{" + ",".join(str(pk) for pk in ids) + "}"
        rows = prepared.fetch_all(_LOOKUP_PG, [array, array], prepare=False)
        per_batch = {batch: n for batch, n in rows if batch is not None}
        return per_batch, any(batch is None and n for batch, n in rows)
    counts = Job.objects.filter(pk__in=ids, batch__isnull=False).order_by().values("batch").annotate(n=Count("pk"))
    per_batch = {row["batch"]: row["n"] for row in counts}
    return per_batch, JobDependency.objects.filter(parent_id__in=ids).exists()


def release_ready(children: Iterable[uuid.UUID]) -> None:
    """Settle those of ``children`` that are blocked and whose parents have all ended: released to
    pending (parents completed, or ``on_parent_failure`` "run"), or cancelled with the reason (a
    parent failed, was cancelled, expired or deleted). Released ids reach Redis when the transaction
    commits."""
    ids = sorted(set(children))
    abandoned = _settle(_locked(ids)) if ids else []
    while abandoned:
        abandoned = _account(abandoned)


def _locked(children: list[uuid.UUID] | QuerySet[Any]) -> list[Job]:
    """``children`` that are blocked, their rows locked in id order."""
    return list(
        Job.objects.select_for_update()
        .filter(pk__in=children)
        .blocked()
        .order_by("pk")
        .only(*release_sql.RELEASE_FIELDS)
    )


def _lock_children_of(parents: list[uuid.UUID]) -> list[Job]:
    """The blocked children of ``parents``, locked in id order (SQLite)."""
    return _locked(JobDependency.objects.filter(parent_id__in=parents).values("child_id"))


def _settle(locked: list[Job]) -> list[uuid.UUID]:
    """Release or cancel the ``locked`` children ready to move; returns the ids cancelled. One statement
    when their parents all completed (release them); else their parents' states are read, and they
    are released (``on_parent_failure`` "run") or cancelled."""
    # The common case first (a chain's step): every parent completed, released in one statement.
    now = timezone.now()
    unblocked = set(states.unblock_ready([job.pk for job in locked], now))
    if unblocked:
        _dispatch_released([job for job in locked if job.pk in unblocked], now)
        locked = [job for job in locked if job.pk not in unblocked]
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
    """Release ``jobs`` whatever their parents' outcome: to scheduled while their ``schedule_at`` is
    ahead, else to pending."""
    if not jobs:
        return
    now = timezone.now()
    later = [job.pk for job in jobs if job.schedule_at is not None and job.schedule_at > now]
    rows = Job.objects.filter(pk__in=[job.pk for job in jobs])
    states.transition(Verb.UNBLOCK_LATER, rows.filter(pk__in=later), updated_at=now)
    states.transition(Verb.UNBLOCK, rows.exclude(pk__in=later), schedule_at=None, updated_at=now)
    _dispatch_released(jobs, now)


def _dispatch_released(jobs: list[Job], now: datetime) -> None:
    """Push released jobs to Redis once the transaction commits: delayed until their ``schedule_at``
    while it is ahead, else ready."""
    for job in jobs:
        if job.schedule_at is not None and job.schedule_at <= now:
            job.schedule_at = None
    transaction.on_commit(lambda: dispatch(jobs))


def _abandon(reasons: dict[str, list[uuid.UUID]]) -> list[uuid.UUID]:
    now = timezone.now()
    abandoned: list[uuid.UUID] = []
    for reason, ids in reasons.items():
        rows = Job.objects.filter(pk__in=ids)
        states.transition(Verb.ABANDON, rows, error=reason, completed_at=now, updated_at=now, schedule_at=None)
        abandoned.extend(ids)
    return abandoned


# Telling the API: the ids are published in one PUBLISH after the commit, so a woken request reads the
# ended row. A publish that fails (Redis out of reach) is logged and dropped: a waiting request then
# answers at its deadline, and the listener re-checks every waiting request when it subscribes again.
def announce(job_ids: Iterable[object]) -> None:
    """Publish ``job_ids`` as ended once the current transaction commits (at once outside one)."""
    ids = [str(one) for one in job_ids]
    if ids:
        transaction.on_commit(lambda: publish(ids))


def publish(ids: list[str]) -> None:
    try:
        get_broker().publish_ended(ids)
    except BrokerUnavailable as exc:
        logger.warning("could not tell the API that jobs ended", extra={"jobs": len(ids), "error": str(exc)})
