"""The batched statements of the worker's hot path, for PostgreSQL and SQLite.

Claiming N jobs is one ``UPDATE ... RETURNING``; recording N outcomes is one ``UPDATE ... FROM
(VALUES ...)``. Both keep the state machine's conditions in their WHERE clauses, with the states
of :mod:`jobs.lifecycle` bound as parameters (the text never names a state, so it stays the same
and preparable). Only :mod:`jobs.states` calls these.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS, connection
from django.db.models.base import ModelState

from jobs import lifecycle, prepared
from jobs.ids import parse_job_id
from jobs.lifecycle import Verb
from jobs.models import Job, JobAttempt, Outcome, Status

# Every name put into SQL text below is a constant of this module or the model's own table and
# column names; every value is a bound parameter. (ruff's S608 cannot see that, hence its noqa.)
_TABLE = Job._meta.db_table
_COLUMNS = [f.column for f in Job._meta.concrete_fields]


@functools.cache
def is_postgres() -> bool:
    """The backend never changes while the process runs; asking the connection each time costs
    a lookup through Django's thread-local proxy on the path of every job."""
    return connection.vendor == "postgresql"


def _pk(value: uuid.UUID) -> Any:
    return Job._meta.pk.get_db_prep_value(value, connection)


def _marks(values: Sequence[Any]) -> str:
    """``(%s, %s, ...)``, one placeholder a value."""
    return "(" + ", ".join(["%s"] * len(values)) + ")"


def _states(states: Sequence[Status]) -> list[str]:
    return [str(state) for state in states]


def _dt(value: datetime | None) -> Any:
    return connection.ops.adapt_datetimefield_value(value) if value is not None else None


_CLAIM_FROM = _states(lifecycle.sources(Verb.CLAIM))
_CLAIM_TO = str(lifecycle.target(Verb.CLAIM))


def _claim_sql(where: str, no_flush: str) -> str:
    return (
        f"UPDATE {_TABLE} SET status = %s, attempts = attempts + 1, worker = %s, "  # noqa: S608
        f"started_at = %s, updated_at = %s, schedule_at = NULL, cancel_requested = false "
        f"FROM (SELECT 1) AS one{no_flush} "
        f"WHERE {where} AND status IN {_marks(_CLAIM_FROM)} AND (expires_at IS NULL OR expires_at > %s) "
        f"RETURNING {', '.join(f'{_TABLE}.{c}' for c in _COLUMNS)}"
    )


# No wait for the WAL flush (synchronous_commit off, for this statement only): a running mark lost
# in a database crash is recovered like a lost worker (the worker's finish, fenced on this attempt,
# matches nothing, and the row, still waiting, is pushed again: jobs.recovery.requeue_lost_claims),
# so the claim need not pay an fsync on the way to starting the job.
_NO_FLUSH = ", (SELECT set_config('synchronous_commit', 'off', true)) AS no_flush"
# One id (a job sent to an idle worker) is a prepared statement: its plan is always the primary
# key. Several go as one array, so the text is the same for every batch size, and are planned for
# their values: a generic plan, not knowing the array's length, may prefer to scan every waiting
# row through the status index when the statistics say they are few.
_CLAIM_ONE_PG = _claim_sql("id = %s", _NO_FLUSH)
_CLAIM_MANY_PG = _claim_sql("id = ANY(%s::uuid[])", _NO_FLUSH)


def claim_rows(job_ids: Sequence[uuid.UUID], worker: str, now: datetime) -> list[Job]:
    """Mark waiting jobs running with the next attempt number; return them as model instances.

    A row whose ``expires_at`` has passed is not claimed (the caller expires it): it never runs.
    """
    if not is_postgres():
        sql = _claim_sql(f"id IN {_marks(job_ids)}", "")
        params = [_CLAIM_TO, worker, _dt(now), _dt(now), *(_pk(i) for i in job_ids), *_CLAIM_FROM, _dt(now)]
        return list(Job.objects.raw(sql, params))  # Django's converters turn SQLite's text into values
    # This is on the path of every job sent to an idle worker: the text is built once, and psycopg
    # takes the UUIDs and the aware datetime as they are.
    ids: uuid.UUID | str
    if len(job_ids) == 1:
        sql, prepare, ids = _CLAIM_ONE_PG, True, job_ids[0]
    else:
        sql, prepare, ids = _CLAIM_MANY_PG, False, "{" + ",".join(str(i) for i in job_ids) + "}"
    return [
        _job_from_row(row)
        for row in prepared.fetch_all(sql, [_CLAIM_TO, worker, now, now, ids, *_CLAIM_FROM, now], prepare=prepare)
    ]


_ATTNAMES = [f.attname for f in Job._meta.concrete_fields]
_JSON_ATTNAMES = [f.attname for f in Job._meta.concrete_fields if f.get_internal_type() == "JSONField"]


def _job_from_row(row: Sequence[Any]) -> Job:
    """A Job from a PostgreSQL row, built the way ``Model.from_db`` would, minus its per-field overhead.

    psycopg already returns UUIDs, datetimes and numbers; Django has it return JSON as text.
    """
    job = Job.__new__(Job)
    values = job.__dict__
    values.update(zip(_ATTNAMES, row, strict=True))
    for name in _JSON_ATTNAMES:
        if isinstance(text := values[name], str):
            values[name] = json.loads(text)
    state = job._state = ModelState()
    state.adding = False
    state.db = DEFAULT_DB_ALIAS  # the connection every statement here runs on
    return job


@dataclass(frozen=True)
class FinishRow:
    """One attempt's outcome: the job's new state and the attempt's own row."""

    job_id: uuid.UUID
    attempt: int  # the job's attempts, which the write is fenced on
    number: int  # the attempt row's number: unique over the job's life, manual retries included
    after_manual_retry: bool
    worker: str
    status: str
    result: Any
    error: str
    traceback: str
    schedule_at: datetime | None
    finished_at: datetime
    started_at: datetime
    outcome: str
    duration: float


_FINISH_COLUMNS = (
    "id", "attempt", "worker", "status", "result", "error", "traceback", "schedule_at", "finished", "started", "outcome", "duration",
    "number", "manual",
)  # fmt: skip
_PG_CASTS = (
    "uuid",
    "integer",
    "text",
    "text",
    "jsonb",
    "text",
    "text",
    "timestamptz",
    "timestamptz",
    "timestamptz",
    "text",
    "double precision",
    "integer",
    "boolean",
)
# The states an attempt ends from (every verb of lifecycle.ENDINGS has the same): the finish
# statement is keyed on them.
_ENDING_FROM = _states(lifecycle.sources(Verb.COMPLETE))
_STOPPED = str(lifecycle.target(Verb.STOP))  # what a job whose cancellation was requested ends as
_FINAL = _states([lifecycle.target(Verb.COMPLETE), lifecycle.target(Verb.FAIL)])  # stamped completed_at
_ATTEMPTS = JobAttempt._meta.db_table
_ATTEMPT_COLUMNS = (
    "job_id, number, started_at, finished_at, outcome, error, traceback, worker, duration, after_manual_retry"
)


# Column i of the JSON batch as its SQL type; the result (4) stays JSON, SQL NULL when absent.
_PG_FIELDS = ", ".join(
    "NULLIF(r->4, 'null'::jsonb)" if cast == "jsonb" else (f"r->>{i}" if cast == "text" else f"(r->>{i})::{cast}")
    for i, cast in enumerate(_PG_CASTS)
)


def _row_values(row: FinishRow) -> tuple[Any, ...]:
    result = None if row.result is None else json.dumps(row.result, cls=DjangoJSONEncoder)
    return (
        _pk(row.job_id),
        row.attempt,
        row.worker,
        row.status,
        result,
        row.error,
        row.traceback,
        _dt(row.schedule_at),
        _dt(row.finished_at),
        _dt(row.started_at),
        row.outcome,
        row.duration,
        row.number,
        row.after_manual_retry,
    )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _finish_values(rows: Sequence[FinishRow]) -> tuple[str, list[Any]]:
    """A relation ``v`` of the outcomes (as the body of ``WITH v (...) AS (...)``), with its parameters.

    PostgreSQL gets the whole batch as one JSON document, unpacked by ``jsonb_to_recordset``: the
    statement's text stays the same whatever the batch size (psycopg parses long statements anew
    every time), and ``json.dumps`` adapts a batch far faster than psycopg adapts typed arrays.
    SQLite gets a VALUES list.
    """
    if is_postgres():
        document = [
            [
                str(row.job_id),
                row.attempt,
                row.worker,
                row.status,
                row.result,
                row.error,
                row.traceback,
                _iso(row.schedule_at),
                _iso(row.finished_at),
                _iso(row.started_at),
                row.outcome,
                row.duration,
                row.number,
                row.after_manual_retry,
            ]
            for row in rows
        ]
        sql = f"SELECT {_PG_FIELDS} FROM jsonb_array_elements(%s::jsonb) AS r"  # noqa: S608 - constants only
        return sql, [json.dumps(document, cls=DjangoJSONEncoder)]
    values = [_row_values(row) for row in rows]
    placeholder = "(" + ", ".join(["%s"] * len(_FINISH_COLUMNS)) + ")"
    return "VALUES " + ", ".join([placeholder] * len(rows)), [value for row in values for value in row]


def _update_sql() -> tuple[str, list[str]]:
    """The finish UPDATE over the relation ``v``, with its parameters."""
    j = _TABLE
    assignments = (
        f"status = CASE WHEN {j}.cancel_requested THEN %s ELSE v.status END, "
        f"result = CASE WHEN {j}.cancel_requested THEN NULL ELSE v.result END, "
        f"error = v.error, traceback = v.traceback, updated_at = v.finished, "
        f"schedule_at = CASE WHEN {j}.cancel_requested THEN NULL ELSE v.schedule_at END, "
        f"completed_at = CASE WHEN {j}.cancel_requested OR v.status IN {_marks(_FINAL)} THEN v.finished ELSE NULL END"
    )
    # The attempt's number too: a recorder from before a manual retry (same worker, same count in the
    # budget) matches nothing either.
    where = (
        f"{j}.id = v.id AND {j}.status IN {_marks(_ENDING_FROM)} AND {j}.attempts = v.attempt AND {j}.worker = v.worker "
        f"AND {j}.earlier_attempts + {j}.attempts = v.number"
    )
    returning = f"{j}.id, {j}.status" + (f", {j}.batch_id, {j}.has_children" if is_postgres() else "")
    sql = f"UPDATE {j} SET {assignments} FROM v WHERE {where} RETURNING {returning}"  # noqa: S608
    return sql, [_STOPPED, *_FINAL, *_ENDING_FROM]


@dataclass(frozen=True)
class Finished:
    """What the finish statement did: {job id: final status} for the rows that matched (the others were
    stale), and, on PostgreSQL, what ties each to others: its batch and whether it has children (None
    on SQLite: the caller looks them up)."""

    final: dict[uuid.UUID, str]
    ties: dict[uuid.UUID, tuple[uuid.UUID | None, bool]] | None = None


def finish_rows(rows: Sequence[FinishRow]) -> Finished:
    """Apply attempt outcomes to running rows and insert their attempt rows.

    On PostgreSQL both writes are one statement (one round trip, its own commit when called outside a
    transaction); on SQLite they are two, and the caller holds a transaction. The rows' ``batch_id``
    and ``has_children`` are read as the UPDATE wrote them: a submission that added a child to a job
    holds its row's lock until it commits, so the finish sees its flag (:mod:`jobs.dependencies`).
    """
    values, params = _finish_values(rows)
    update, update_params = _update_sql()
    with_v = f"WITH v ({', '.join(_FINISH_COLUMNS)}) AS ({values})"
    if is_postgres():
        return _finish_pg(rows, f"{with_v}, u AS ({update})", [*params, *update_params])
    return _finish_sqlite(rows, f"{with_v} {update}", [*params, *update_params])


def _finish_pg(rows: Sequence[FinishRow], updated: str, params: list[Any]) -> Finished:
    """The update (``u``) and the INSERT of the attempt rows (``i``) as one statement."""
    sql = (
        f"{updated}, i AS (INSERT INTO {_ATTEMPTS} ({_ATTEMPT_COLUMNS}) "  # noqa: S608
        f"SELECT u.id, v.number, v.started, v.finished, "
        f"CASE WHEN u.status = %s THEN %s ELSE v.outcome END, "
        f"v.error, v.traceback, v.worker, v.duration, v.manual FROM u JOIN v ON v.id = u.id "
        f"RETURNING job_id, outcome) "
        f"SELECT i.job_id, i.outcome, u.batch_id, u.has_children FROM i JOIN u ON u.id = i.job_id"
    )
    found = prepared.fetch_all(sql, [*params, _STOPPED, Outcome.CANCELLED.value])
    by_id = {row.job_id: row for row in rows}
    final: dict[uuid.UUID, str] = {}
    ties: dict[uuid.UUID, tuple[uuid.UUID | None, bool]] = {}
    for job_id, outcome, batch_id, has_children in found:
        pk = _as_uuid(job_id)
        final[pk] = _STOPPED if outcome == Outcome.CANCELLED else by_id[pk].status
        ties[pk] = (batch_id, bool(has_children))
    return Finished(final, ties)


def _finish_sqlite(rows: Sequence[FinishRow], update: str, params: list[Any]) -> Finished:
    """The update, then the INSERT of the attempt rows of the jobs it matched."""
    with connection.cursor() as cursor:
        cursor.execute(update, params)
        final = {_as_uuid(job_id): status for job_id, status in cursor.fetchall()}
        attempts = [
            (
                _pk(row.job_id),
                row.number,
                _dt(row.started_at),
                _dt(row.finished_at),
                Outcome.CANCELLED.value if final[row.job_id] == _STOPPED else row.outcome,
                row.error,
                row.traceback,
                row.worker,
                row.duration,
                row.after_manual_retry,
            )
            for row in rows
            if row.job_id in final
        ]
        if attempts:
            marks = _marks(attempts[0])
            cursor.executemany(f"INSERT INTO {_ATTEMPTS} ({_ATTEMPT_COLUMNS}) VALUES {marks}", attempts)  # noqa: S608
    return Finished(final)


def _as_uuid(value: Any) -> uuid.UUID:
    """The id column as read back (SQLite returns text)."""
    pk = parse_job_id(value)
    if pk is None:
        raise ValueError(f"the database returned {value!r} as a job id")
    return pk
