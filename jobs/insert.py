"""Writes new job rows fast: one INSERT for one job, one COPY (PostgreSQL) for many.

Django's ``bulk_create`` spends about 100 µs of Python per row building model instances and
adapting every field, which caps a batch of 1,000 at a few thousand jobs a second. Here a row is
a tuple of column values built once from the validated submission; PostgreSQL takes the batch
through ``COPY`` and SQLite through ``executemany``. The model instances handed back are built
without ``Model.__init__`` (see :func:`instances`), as Django itself does for ``from_db``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection
from django.db.models.base import ModelState

from jobs import batch_sql, prepared
from jobs.models import Job
from jobs.validation import ValidJob

_FIELDS = list(Job._meta.concrete_fields)
_COLUMNS = [f.column for f in _FIELDS]
_ATTNAMES = [f.attname for f in _FIELDS]
_PAYLOAD_INDEX = _ATTNAMES.index("payload")
_ROW_VALUES = itemgetter(*_ATTNAMES)
# Static defaults of the model's fields; callables (uuid4, now, dict) are filled in per row.
_STATIC_DEFAULTS = {f.attname: f.get_default() for f in _FIELDS if not (f.has_default() and callable(f.default))}


def new_row(valid: ValidJob, now: datetime) -> dict[str, Any]:
    """The attribute values of a new job row."""
    row = dict(_STATIC_DEFAULTS)
    row.update(valid.fields)
    row["id"] = uuid.uuid4()
    row["created_at"] = row["updated_at"] = now
    return row


# Built once: a single-job INSERT is on the path of every job a client sends.
_INSERT_SQL = (
    f"INSERT INTO {Job._meta.db_table} ({', '.join(_COLUMNS)}) "  # noqa: S608 - names are the model's
    f"VALUES ({', '.join(['%s'] * len(_COLUMNS))})"
)


def insert(rows: Sequence[dict[str, Any]], payloads: Sequence[str]) -> None:
    """Insert rows (``payloads`` are their payloads as JSON text, already made by validation)."""
    if not rows:
        return
    if not batch_sql.is_postgres():
        params = [_sqlite_values(row, payload) for row, payload in zip(rows, payloads, strict=True)]
        with connection.cursor() as cursor:
            cursor.executemany(_INSERT_SQL, params)
    elif len(rows) > 1:
        _copy(rows, payloads)
    else:
        prepared.fetch_all(_INSERT_SQL, _pg_values(rows[0], payloads[0]))


def _pg_values(row: dict[str, Any], payload: str) -> list[Any]:
    # psycopg adapts UUIDs, datetimes and numbers itself; the payload is JSON text already.
    try:
        values = list(_ROW_VALUES(row))  # new_row() fills every column: one C call, not 37 lookups
    except KeyError:
        values = [row.get(name) for name in _ATTNAMES]
    values[_PAYLOAD_INDEX] = payload
    return values


def _sqlite_values(row: dict[str, Any], payload: str) -> list[Any]:
    values: list[Any] = []
    for field, attname in zip(_FIELDS, _ATTNAMES, strict=True):
        value = row.get(attname)
        if attname == "payload":
            values.append(payload)
        elif attname == "result":
            values.append(None)
        else:
            values.append(field.get_db_prep_save(value, connection))
    return values


def _copy(rows: Sequence[dict[str, Any]], payloads: Sequence[str]) -> None:
    sql = f"COPY {Job._meta.db_table} ({', '.join(_COLUMNS)}) FROM STDIN"
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor under Django's wrapper
        with raw.copy(sql) as copy:
            for row, payload in zip(rows, payloads, strict=True):
                copy.write_row(_pg_values(row, payload))


def instances(rows: Sequence[dict[str, Any]]) -> list[Job]:
    """Model instances for rows just inserted, built the cheap way (as ``Model.from_db`` would)."""
    built = []
    db = DEFAULT_DB_ALIAS  # insert() writes through the default connection
    for row in rows:
        job = Job.__new__(Job)
        job.__dict__.update(row)
        state = ModelState()
        state.adding = False
        state.db = db
        job._state = state
        built.append(job)
    return built
