"""Start-up check of the services: a database that answers but lacks migrations is a misconfiguration.

A worker or a scheduler on such a database would run and fail every step ("no such table") without
end, so it refuses to start instead, in one line. A database that does not answer is an outage, not a
misconfiguration: the services start and ride it out (the fault matrix's F15), so the check passes.
"""

from __future__ import annotations

import pkgutil
from importlib.util import find_spec

from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder


def _every_file_recorded(connection: BaseDatabaseWrapper) -> bool:
    """Whether every migration file of every installed app is recorded as applied, told without importing
    the migrations (the worker pool's supervisor would carry them into every worker process).

    Then nothing is left to apply; any file not recorded (a new migration, a squash) is left to Django's
    own plan. The files are those Django's loader would read: the modules of each app's migrations package
    whose names start with neither ``_`` nor ``~``.
    """
    applied = MigrationRecorder(connection).applied_migrations()
    for app in apps.get_app_configs():
        module, _ = MigrationLoader.migrations_module(app.label)
        spec = find_spec(module) if module else None
        if spec is None or not spec.submodule_search_locations:
            continue  # no migrations package: an app Django does not migrate
        for info in pkgutil.iter_modules(spec.submodule_search_locations):
            if not info.ispkg and info.name[0] not in "_~" and (app.label, info.name) not in applied:
                return False
    return True


def unapplied_migrations(alias: str = DEFAULT_DB_ALIAS) -> list[str]:
    """``app.migration`` names not yet applied; empty when all are, or when the database is out of reach."""
    connection = connections[alias]
    try:
        if _every_file_recorded(connection):
            return []
        from django.db.migrations.executor import MigrationExecutor

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
