"""Unique jobs: within its window, one job per key; a duplicate submission gets that job back.

A key is held by a row of :class:`jobs.models.UniqueClaim` (the key is its primary key), written in
the submitting transaction before the job's own row. Whether the holder still holds is judged when
a later submission meets its claim, from the holder job's row, under the claim's row lock:

* the window (``unique_for``) has passed: free;
* ``unique_until="start"``: free once the job has started (or ended without starting);
* ``unique_until="finish"`` (the default): free once the job is finished (any final state).

So no code path that moves a job (claim, record, cancel, expire, reclaim, the admin) has to release
anything, and nothing can be forgotten. It is exact under concurrency: the claim is taken with
``INSERT ... ON CONFLICT DO NOTHING`` (of two inserts of one key, the second waits for the first to
commit, then finds the key); a submission that meets a claim locks it (``SELECT ... FOR UPDATE``)
and then reads the holder in a new statement (a fresh snapshot under READ COMMITTED), so it sees the
job the previous holder of the lock committed with the claim. Claims of several keys are taken in
key order, so two batches never wait for each other in a cycle. Claims whose window passed are
deleted by the scheduler's expiry sweep (:func:`purge_lapsed`); until then they are only judged.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.db import connection

from jobs.lifecycle import FINISHED, WAITING
from jobs.models import Job, UniqueClaim
from jobs.unique_terms import Uniqueness

_TABLE = UniqueClaim._meta.db_table
# "key" quoted: a keyword in SQLite's grammar (both databases take double-quoted names).
_INSERT = (
    f'INSERT INTO {_TABLE} ("key", job_id, until, expires_at) VALUES (%s, %s, %s, %s) '  # noqa: S608 - constants
    'ON CONFLICT ("key") DO NOTHING RETURNING "key"'
)
# A claim deleted between the failed INSERT and the lock (its window lapsed and was purged) is tried again.
_ATTEMPTS = 5


def holds(claim: UniqueClaim, holder: Job | None, now: datetime) -> bool:
    """Whether ``claim`` still keeps its key from a new job, ``holder`` being its job's row now."""
    if holder is None or claim.expires_at <= now:
        return False
    if claim.until == "start":
        return holder.status in WAITING and holder.attempt_number == 0
    return holder.status not in FINISHED


def claim(unique: Uniqueness, job_id: uuid.UUID, now: datetime) -> Job | None:
    """Take ``unique.key`` for the new job ``job_id``; returns None when taken, else the job that holds
    the key (the submission is a duplicate of it and must write nothing).

    Must run in the transaction that inserts the job: the claim and the job commit together.
    """
    expires_at = now + timedelta(seconds=unique.window)
    for _ in range(_ATTEMPTS):
        if _insert(unique, job_id, expires_at):
            return None
        current = UniqueClaim.objects.select_for_update().filter(key=unique.key).first()
        if current is None:
            continue  # purged in between: insert again
        holder = Job.objects.filter(pk=current.job_id).first()
        if holds(current, holder, now):
            return holder
        UniqueClaim.objects.filter(key=unique.key).update(job_id=job_id, until=unique.until, expires_at=expires_at)
        return None
    raise RuntimeError(f"unique key {unique.key!r}: its claim kept vanishing")  # pragma: no cover - needs a race


def claim_many(wanted: Sequence[tuple[int, Uniqueness, uuid.UUID]], now: datetime) -> dict[int, Job | int]:
    """Claims for several new jobs of one batch, given as (index in the batch, terms, job id).

    Returns the duplicates: index -> the stored job that holds its key, or the index of an earlier
    job of the same batch with the same key. Keys are taken in sorted order (no deadlock between
    two batches) and each once; the first job of the batch with a key is the one that tries.
    """
    first: dict[str, int] = {}
    duplicates: dict[int, Job | int] = {}
    for index, unique, _ in wanted:
        if unique.key in first:
            duplicates[index] = first[unique.key]
        else:
            first[unique.key] = index
    for index, unique, job_id in sorted(wanted, key=lambda item: item[1].key):
        if first[unique.key] != index:
            continue
        holder = claim(unique, job_id, now)
        if holder is not None:
            duplicates[index] = holder
    # A later job of the batch duplicates whatever its key's first job got: the stored holder or itself.
    for index, target in list(duplicates.items()):
        if isinstance(target, int) and isinstance(duplicates.get(target), Job):
            duplicates[index] = duplicates[target]
    return duplicates


def _insert(unique: Uniqueness, job_id: uuid.UUID, expires_at: datetime) -> bool:
    job_field = UniqueClaim._meta.get_field("job_id")
    params = [
        unique.key,
        job_field.get_db_prep_value(job_id, connection),
        unique.until,
        connection.ops.adapt_datetimefield_value(expires_at),
    ]
    with connection.cursor() as cursor:
        cursor.execute(_INSERT, params)
        return cursor.fetchone() is not None


def purge_lapsed(now: datetime, batch: int) -> int:
    """Delete up to ``batch`` claims whose window has passed; returns how many."""
    keys = list(UniqueClaim.objects.filter(expires_at__lte=now).values_list("key", flat=True)[:batch])
    if not keys:
        return 0
    deleted, _ = UniqueClaim.objects.filter(key__in=keys, expires_at__lte=now).delete()
    return deleted
