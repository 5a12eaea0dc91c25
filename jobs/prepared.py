"""Server-side prepared statements for the few statements on the hot path, on Django's connection.

Django turns psycopg's prepared statements off, because transaction-mode poolers (PgBouncer
before 1.21) cannot keep them. Without them PostgreSQL plans the claim of one job, the finish
statement and the single-job INSERT anew on every call, which costs 0.1 to 0.3 ms of each. Only
these statements, and the release of a chain's next step (jobs.release_sql), are prepared; Django's own
queries are left as they are.
``JQS_DATABASE_PREPARED_STATEMENTS=false`` turns it off for such a pooler (PgBouncer 1.21 and
later keeps them when its ``max_prepared_statements`` is set). A statement that breaks anyway (a
pooler that lost it, a migration that changed a column it returns) is run again on a new
connection.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC
from typing import Any, TypeVar

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from psycopg.types.datetime import TimestamptzLoader

from zipline_site.setting_values import read_once

# JQS_DATABASE_PREPARED_STATEMENTS, read at every statement run here (zipline_site.setting_values).
_prepared_statements = read_once(lambda: bool(settings.ZIPLINE.database.prepared_statements))

T = TypeVar("T")

# A prepare threshold that never triggers by itself: only the statements run here are prepared.
_ONLY_WHEN_ASKED = 2**31 - 1
# Where the psycopg cursor of a Django connection is kept (one per connection, so per thread).
_CURSOR_ATTRIBUTE = "_zipline_prepared_cursor"


# What PostgreSQL says when a prepared statement it was sent is gone, doubled, or stale after a
# migration changed a column it returns ("cached plan must not change result type").
_BROKEN_STATEMENT = (
    psycopg.errors.InvalidSqlStatementName,
    psycopg.errors.DuplicatePreparedStatement,
    psycopg.errors.FeatureNotSupported,
)


def fetch_all(sql: str, params: Sequence[Any], *, prepare: bool = True) -> list[tuple[Any, ...]]:
    """Run ``sql`` (``%s`` placeholders) as a prepared statement and return its rows; with
    ``prepare=False``, unprepared (planned for its values each time)."""
    conn = connections[DEFAULT_DB_ALIAS]
    if not _prepared_statements() or conn.queries_logged:
        # Django's cursor: it logs the query where Django is asked to (DEBUG, tests that count them).
        with conn.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []
    try:
        return _run_own(conn, sql, params, prepare)
    except DatabaseError as exc:
        if not isinstance(exc.__cause__, _BROKEN_STATEMENT) or conn.in_atomic_block:
            raise
        # psycopg would go on sending the broken statement on this connection: start a new one
        # (with nothing prepared) and run it again. It did not run, so running it again is safe.
        conn.close()
        return _run_own(conn, sql, params, prepare)


def _run_own(conn: BaseDatabaseWrapper, sql: str, params: Sequence[Any], prepare: bool) -> list[tuple[Any, ...]]:
    """What Django's cursor wrapper does around a statement (connect, the thread and transaction
    checks, its error classes), on one psycopg cursor kept per connection: these statements are
    on the path of every job sent to an idle worker, where each layer costs."""
    conn.close_if_health_check_failed()
    conn.ensure_connection()
    conn.validate_thread_sharing()
    conn.validate_no_broken_transaction()
    raw = conn.connection
    cursor = conn.__dict__.get(_CURSOR_ATTRIBUTE)
    if cursor is None or cursor.connection is not raw or cursor.closed:
        if raw.prepare_threshold is None:
            raw.prepare_threshold = _ONLY_WHEN_ASKED
        # A server-side binding cursor (the same text whatever the values), which is what can be
        # prepared; Django's own cursors bind on the client.
        cursor = psycopg.Cursor(raw)
        _load_timestamps_in_c(conn, cursor)
        conn.__dict__[_CURSOR_ATTRIBUTE] = cursor
    with conn.wrap_database_errors:
        cursor.execute(sql, params, prepare=prepare)
        return cursor.fetchall() if cursor.description else []


def _load_timestamps_in_c(conn: BaseDatabaseWrapper, cursor: psycopg.Cursor[Any]) -> None:
    """Have ``cursor`` read ``timestamptz`` with psycopg's own loader, which runs in C, not Django's.

    Django's loader is a Python subclass of psycopg's that labels each value with the connection's time
    zone: parsing in Python costs about 3 µs a value, and every row a worker claims holds several. Django
    sets the session's time zone to the connection's, so psycopg's loader gives the same values; the swap
    is made only for a connection in UTC (Django's own with ``USE_TZ``), whose values carry ``UTC``.
    (Not for the whole connection: Django's cursors read the time zone off the loader they find.)
    """
    if conn.timezone is UTC and cursor.connection.pgconn.parameter_status(b"TimeZone") == b"UTC":
        cursor.adapters.register_loader("timestamptz", TimestamptzLoader)


def again_if_broken(run: Callable[[], T]) -> T:
    """Run ``run`` (which holds a transaction around prepared statements); if a prepared statement
    broke (see :func:`fetch_all`), run it again once on a new connection. Inside a transaction
    :func:`fetch_all` cannot start a new connection itself; out here, the transaction has rolled back."""
    conn = connections[DEFAULT_DB_ALIAS]
    try:
        return run()
    except DatabaseError as exc:
        if not isinstance(exc.__cause__, _BROKEN_STATEMENT) or conn.in_atomic_block:
            raise
        conn.close()
        return run()
