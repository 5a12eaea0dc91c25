"""Start-up check of the services: a database that answers but lacks migrations is a misconfiguration.

A worker or a scheduler on such a database would run and fail every step ("no such table") without
end, so it refuses to start instead, in one line. A database that does not answer is an outage, not a
misconfiguration: the services start and ride it out (the fault matrix's F15), so the check passes.
"""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor


def unapplied_migrations(alias: str = DEFAULT_DB_ALIAS) -> list[str]:
    """``app.migration`` names not yet applied; empty when all are, or when the database is out of reach."""
    connection = connections[alias]
    try:
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError:
        return []
    finally:
        connection.close()
    return [f"{migration.app_label}.{migration.name}" for migration, backwards in plan if not backwards]


def migrations_problem(alias: str = DEFAULT_DB_ALIAS) -> str | None:
    """None when the schema is up to date (or unknown); otherwise a one-line reason naming the fix."""
    missing = unapplied_migrations(alias)
    if not missing:
        return None
    shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
    return f"the database lacks {len(missing)} migration(s) ({shown}): run manage.py migrate first"
