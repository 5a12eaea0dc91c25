"""The statements that release a blocked job (:mod:`jobs.endings`), for PostgreSQL and SQLite: built once,
with the states of :mod:`jobs.lifecycle` bound as parameters, so a chain's step compiles no ORM query
and its one statement between the finish and the commit is prepared.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection

from jobs import lifecycle, prepared
from jobs.batch_sql import _TABLE, _as_uuid, _dt, _marks, _pk, _states, is_postgres
from jobs.lifecycle import Verb
from jobs.models import Job, JobDependency, Status

# -- a chain's step: the blocked children whose parents have all completed, released in one statement

_UNBLOCK_FROM = _states(lifecycle.sources(Verb.UNBLOCK))
_UNBLOCK_TO = str(lifecycle.target(Verb.UNBLOCK))
_UNBLOCK_LATER_TO = str(lifecycle.target(Verb.UNBLOCK_LATER))
# A job submitted with a due time (schedule_at, delay) as well as parents is released to scheduled while
# that time is ahead, else to pending without it. Parameters: now, the two states, now.
_UNBLOCK_SET = (
    f"status = CASE WHEN {_TABLE}.schedule_at > %s THEN %s ELSE %s END, "
    f"schedule_at = CASE WHEN {_TABLE}.schedule_at > %s THEN {_TABLE}.schedule_at END"
)
_DONE = str(lifecycle.target(Verb.COMPLETE))
_EDGES = JobDependency._meta.db_table


# The row's parents have all completed (a parent whose row is gone has not); one parameter, the state.
_ALL_PARENTS_DONE = (
    f"NOT EXISTS (SELECT 1 FROM {_EDGES} d LEFT JOIN {_TABLE} p ON p.id = d.parent_id "  # noqa: S608
    f"WHERE d.child_id = {_TABLE}.id AND (p.status IS NULL OR p.status <> %s))"
)


def _unblock_sql(where: str) -> str:
    j = _TABLE
    return (
        f"UPDATE {j} SET {_UNBLOCK_SET}, updated_at = %s WHERE {where} AND status IN {_marks(_UNBLOCK_FROM)} "  # noqa: S608
        f"AND {_ALL_PARENTS_DONE} RETURNING {j}.id"
    )


_UNBLOCK_PG = _unblock_sql("id = ANY(%s::uuid[])")


def _unblock_params(now: datetime) -> list[Any]:
    """The parameters of :data:`_UNBLOCK_SET` and ``updated_at``."""
    return [now, _UNBLOCK_LATER_TO, _UNBLOCK_TO, now, now]


def unblock_ready(job_ids: Sequence[uuid.UUID], now: datetime) -> list[uuid.UUID]:
    """Move those of ``job_ids`` that are blocked and whose parents have all completed to pending (to
    scheduled while their ``schedule_at`` is ahead); returns their ids. The caller holds their rows' locks, so the parents' states read here are
    the committed ones (jobs.endings)."""
    if not job_ids:
        return []
    if is_postgres():
        ids = "{" + ",".join(str(i) for i in job_ids) + "}"
        rows = prepared.fetch_all(_UNBLOCK_PG, [*_unblock_params(now), ids, *_UNBLOCK_FROM, _DONE], prepare=False)
    else:
        sql = _unblock_sql(f"id IN {_marks(job_ids)}")
        with connection.cursor() as cursor:
            params = [_dt(v) if isinstance(v, datetime) else v for v in _unblock_params(now)]
            cursor.execute(sql, [*params, *(_pk(i) for i in job_ids), *_UNBLOCK_FROM, _DONE])
            rows = cursor.fetchall()
    return [_as_uuid(row[0]) for row in rows]


# The fields of a blocked child that a release needs: enough to judge it and to push it to Redis.
RELEASE_FIELDS = ("id", "queue", "priority", "type", "group", "schedule_at", "on_parent_failure")
_LOCKED_FIELDS = [f for f in Job._meta.concrete_fields if f.name in RELEASE_FIELDS]  # the model's order


# The blocked children of jobs that just ended, in one statement (jobs.endings, for the jobs marked
# ``has_children``): locked in id order, and those whose parents have all completed released.
# A child locked and not released is returned for the caller to judge in a statement of its own (a parent
# that failed, or one whose ending committed while this statement waited for the child's lock: the
# release's NOT EXISTS reads the parents as of the statement's start). A chain's step runs this alone
# between its finish and its commit, where it ran a lookup, the lock and the release.
# Prepared (it is on every chain step): its text never changes, and no state is tested through an index
# (``(...) IS TRUE``), so a generic plan, not knowing how many ids it is given, still finds the children's
# rows by their primary key, never by scanning the blocked rows through the status index (as a generic
# plan of the claim of several jobs may: jobs.batch_sql)
# (test_a_chain_step_release_is_prepared_and_its_generic_plan_finds_rows_by_their_primary_key).
_C_FIELDS = ", ".join(f"{_TABLE}.{f.column}" for f in _LOCKED_FIELDS)
_C_COLUMNS = ", ".join(f"c.{f.column}" for f in _LOCKED_FIELDS)
_RELEASE_CHILDREN_PG = (
    f"WITH c AS (SELECT {_C_FIELDS} FROM {_TABLE} WHERE {_TABLE}.id = ANY(ARRAY("  # noqa: S608
    f"SELECT child_id FROM {_EDGES} WHERE parent_id = ANY(%s::uuid[]))) AND ({_TABLE}.status = %s) IS TRUE "
    f"ORDER BY {_TABLE}.id FOR UPDATE), "
    f"r AS (UPDATE {_TABLE} SET {_UNBLOCK_SET}, updated_at = %s FROM c WHERE {_TABLE}.id = c.id "
    f"AND ({_TABLE}.status IN {_marks(_UNBLOCK_FROM)}) IS TRUE AND {_ALL_PARENTS_DONE} RETURNING {_TABLE}.id) "
    f"SELECT r.id IS NOT NULL, {_C_COLUMNS} FROM c LEFT JOIN r ON r.id = c.id"
)


def release_children(parents: Sequence[uuid.UUID], now: datetime) -> tuple[list[Job], list[Job]] | None:
    """On PostgreSQL, :data:`_RELEASE_CHILDREN_PG` for ``parents`` (in the transaction that ended them):
    the children released, and those locked and left; None elsewhere (the caller asks the ORM)."""
    if not is_postgres():
        return None
    ids = "{" + ",".join(str(i) for i in parents) + "}"
    params = [ids, str(Status.BLOCKED), *_unblock_params(now), *_UNBLOCK_FROM, _DONE]
    released: list[Job] = []
    locked: list[Job] = []
    names = [f.attname for f in _LOCKED_FIELDS]
    for was_released, *fields in prepared.fetch_all(_RELEASE_CHILDREN_PG, params):
        job = Job.from_db(DEFAULT_DB_ALIAS, names, fields)
        if was_released:
            released.append(job)
            if job.schedule_at is not None and job.schedule_at <= now:
                job.schedule_at = None  # released to pending: pushed ready, not delayed
        else:
            locked.append(job)
    return released, locked
