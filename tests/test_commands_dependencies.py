"""One-shot commands answer a database or Redis they cannot use with one line, not a traceback."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

import pytest

from tests.helpers import wait_for
from tests.procs import free_port, manage, running
from zipline_site.exit_codes import ExitCode


@pytest.mark.parametrize("args", [("createtoken", "admin"), ("rebuildqueues",)])
def test_a_database_without_tables_is_one_line_naming_migrate(tmp_path: Path, args: tuple[str, ...]) -> None:
    done = manage(*args, JQS_DATABASE_URL=f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    assert done.returncode == ExitCode.UNAVAILABLE, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"CommandError: database error: no such table: {'auth_user' if args[0] == 'createtoken' else 'jobs_job'} "
        "(is the database up and migrated? manage.py migrate)"
    ]


def test_a_database_out_of_reach_is_one_line() -> None:
    done = manage("createtoken", "admin", JQS_DATABASE_URL=f"postgres://postgres@127.0.0.1:{free_port()}/nothing")
    assert done.returncode == ExitCode.UNAVAILABLE and "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("CommandError: database error: connection failed: connection to server at")


@pytest.mark.django_db(transaction=True)
def test_redis_out_of_reach_is_one_line() -> None:
    done = manage("rebuildqueues", JQS_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    assert done.returncode == ExitCode.UNAVAILABLE and "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("CommandError: Redis error: ") and line.endswith("(JQS_REDIS_URL)")


@pytest.mark.parametrize("command", ["runworkers", "runscheduler"])
def test_services_refuse_a_database_without_migrations_in_one_line(tmp_path: Path, command: str) -> None:
    """They would otherwise run and fail every step ("no such table") without end."""
    done = manage(command, JQS_DATABASE_URL=f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    assert done.returncode == ExitCode.CONFIG, done.stderr[-500:]
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("CommandError: the database lacks ") and line.endswith(": run manage.py migrate first")


def test_a_database_one_migration_behind_is_refused_naming_it(tmp_path: Path) -> None:
    """The pre-flight tells an up-to-date database without importing the migrations (jobs/db_checks.py); one
    file not recorded as applied goes to Django's own plan, which names it."""
    url = f"sqlite:///{tmp_path / 'behind.sqlite3'}"
    assert manage("migrate", "-v", "0", JQS_DATABASE_URL=url).returncode == 0
    with sqlite3.connect(tmp_path / "behind.sqlite3") as db:
        [(name,)] = db.execute("SELECT max(name) FROM django_migrations WHERE app = 'jobs'").fetchall()
        db.execute("DELETE FROM django_migrations WHERE app = 'jobs' AND name = ?", (name,))
    done = manage("runworkers", JQS_DATABASE_URL=url)
    assert done.returncode == ExitCode.CONFIG, done.stderr[-500:]
    assert done.stderr.strip().splitlines() == [
        f"CommandError: the database lacks 1 migration(s) (jobs.{name}): run manage.py migrate first"
    ]


@pytest.mark.parametrize("command", ["runworkers", "runscheduler"])
def test_services_start_on_a_database_out_of_reach_and_ride_it_out(tmp_path: Path, command: str) -> None:
    """An outage is not a misconfiguration: the check passes, and the service waits for the database."""
    url = f"postgres://postgres@127.0.0.1:{free_port()}/nothing"
    with running([command], tmp_path, JQS_DATABASE_URL=url) as service:
        started = "supervisor started" if command == "runworkers" else "scheduler started"
        wait_for(lambda: started in service.log(), 30, 0.05, f"{command} started")
        service.signal(signal.SIGTERM)
        assert service.wait(30) == 0


@pytest.mark.parametrize("args", [("migrate",), ("createsuperuser", "--noinput", "--username", "root")])
def test_django_s_own_commands_answer_a_database_out_of_reach_in_one_line(args: tuple[str, ...]) -> None:
    """The README's ``manage.py migrate``, before the database is up (or with a wrong URL)."""
    done = manage(*args, JQS_DATABASE_URL=f"postgres://postgres:SuperSecretDbPw@127.0.0.1:{free_port()}/nothing")
    assert done.returncode == ExitCode.UNAVAILABLE and "Traceback" not in done.stderr, done.stderr[-3000:]
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("CommandError: database error: connection failed: connection to server at")
    assert line.endswith("(is the database up? JQS_DATABASE_URL)") and "SuperSecretDbPw" not in line
    with_traceback = manage(*args, "--traceback", JQS_DATABASE_URL=f"postgres://postgres@127.0.0.1:{free_port()}/x")
    assert with_traceback.returncode == 1 and "Traceback" in with_traceback.stderr  # asked for


@pytest.mark.django_db(transaction=True)
def test_runworkers_stops_with_one_line_naming_a_redis_that_does_not_answer() -> None:
    """No stand-in outside make run: the README's production command names the Redis it tried (exit 3)."""
    port = free_port()
    done = manage("runworkers", JQS_REDIS_URL=f"redis://:SuperSecretRedisPw@127.0.0.1:{port}/0")
    assert done.returncode == ExitCode.UNAVAILABLE, done.stderr[-3000:]
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"CommandError: cannot reach Redis at redis://:***@127.0.0.1:{port}/0: ")
    assert "SuperSecretRedisPw" not in done.stderr + done.stdout and "stand-in" not in done.stdout


@pytest.mark.django_db(transaction=True)
def test_runscheduler_waits_for_a_redis_that_does_not_answer(tmp_path: Path) -> None:
    with running(["runscheduler"], tmp_path, JQS_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0") as scheduler:
        wait_for(lambda: "Redis unavailable; retrying with backoff" in scheduler.log(), 30, 0.05, "the outage logged")
        scheduler.signal(signal.SIGTERM)
        assert scheduler.wait(30) == 0
