"""Server-side prepared statements for the few statements on the hot path, on Django's connection.

Django turns psycopg's prepared statements off, because transaction-mode poolers (PgBouncer
before 1.21) cannot keep them. Without them PostgreSQL plans the claim of one job, the finish
statement and the single-job INSERT anew on every call, which costs 0.1 to 0.3 ms of each. Only
these statements are prepared; Django's own queries are left as they are.
``JQS_DATABASE_PREPARED_STATEMENTS=false`` turns it off for such a pooler (PgBouncer 1.21 and
later keeps them when its ``max_prepared_statements`` is set). A statement that breaks anyway (a
pooler that lost it, a migration that changed a column it returns) is run again on a new
connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections
from django.db.backends.utils import CursorWrapper

# A prepare threshold that never triggers by itself: only the statements run here are prepared.
_ONLY_WHEN_ASKED = 2**31 - 1


# What PostgreSQL says when a prepared statement it was sent is gone, doubled, or stale after a
# migration changed a column it returns ("cached plan must not change result type").
_BROKEN_STATEMENT = (
    psycopg.errors.InvalidSqlStatementName,
    psycopg.errors.DuplicatePreparedStatement,
    psycopg.errors.FeatureNotSupported,
)


class _PreparingCursor(psycopg.Cursor[Any]):
    """A server-side binding cursor (the same text whatever the values) that prepares what it runs.

    Django's wrapper calls ``execute(sql, params)``; the ``prepare`` it cannot pass is always on here.
    """

    def execute(
        self, query: Any, params: Any = None, *, prepare: bool | None = None, binary: bool | None = None
    ) -> Any:
        return super().execute(query, params, prepare=True, binary=binary)


def cursor() -> CursorWrapper:
    """A cursor on Django's PostgreSQL connection whose statements are prepared.

    It is wrapped as Django wraps its own, so errors are Django's. While Django logs queries (DEBUG,
    tests that count them), or when prepared statements are turned off, it is Django's own cursor.
    """
    # The connection is looked up once: each ``connection.x`` goes through Django's thread-local
    # proxy, and this runs on the way to every job sent to an idle worker.
    conn = connections[DEFAULT_DB_ALIAS]
    if not settings.ZIPLINE.database_prepared_statements or conn.queries_logged:
        return conn.cursor()
    conn.close_if_health_check_failed()  # as conn.cursor() does
    conn.ensure_connection()
    conn.validate_thread_sharing()
    raw = conn.connection
    if raw.prepare_threshold is None:
        raw.prepare_threshold = _ONLY_WHEN_ASKED
    # (django-stubs types make_cursor's argument as a wrapper; it takes the driver's cursor.)
    return conn.make_cursor(cast(Any, _PreparingCursor(raw)))


def execute(sql: str, params: Sequence[Any], *, prepare: bool = True) -> CursorWrapper:
    """Run ``sql`` (``%s`` placeholders) on a :func:`cursor`, or with ``prepare=False`` on Django's
    own (planned for its values each time); returns the cursor to fetch from."""
    if not prepare:
        run_on = connection.cursor()
        run_on.execute(sql, params)
        return run_on
    try:
        run_on = cursor()
        run_on.execute(sql, params)
    except DatabaseError as exc:
        if not isinstance(exc.__cause__, _BROKEN_STATEMENT) or connection.in_atomic_block:
            raise
        # psycopg would go on sending the broken statement on this connection: start a new one
        # (with nothing prepared) and run it again. It did not run, so running it again is safe.
        connection.close()
        run_on = cursor()
        run_on.execute(sql, params)
    return run_on
