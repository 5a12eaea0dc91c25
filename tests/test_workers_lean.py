"""The worker pool loads only what runs jobs: no REST API, no OpenAPI, no admin, no dashboard.

A real ``manage.py runworkers`` (metrics and info logs on, as by default) runs a job and stops; each of
its processes writes the modules it loaded in its life (``ZIPLINE_MODULES_REPORT_DIR``).
"""

from __future__ import annotations

import ast
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from jobs import client
from jobs.broker import Broker
from jobs.models import Job, Status
from tests.helpers import wait_for
from tests.procs import ROOT, free_port, process_env, running, wait_for_workers
from workers.loaded_modules import REPORT_DIR_ENV
from zipline_site.installed_apps import ALL_APPS, WEB_APPS, installed_apps

# Packages (and their submodules) a worker process must not import.
FORBIDDEN = (
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_prometheus",
    "django.contrib.admin",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "jobs.admin",
    "jobs.api",
    "jobs.dashboard",
    "scheduler.admin",
    "scheduler.api",
    "zipline_site.urls",
    # The pre-flight's migration check reads the migration files' names, not the migrations (jobs/db_checks.py).
    "django.db.migrations.executor",
    "django.contrib.auth.migrations",
    "django.contrib.contenttypes.migrations",
    "jobs.migrations",
    "scheduler.migrations",
    "workers.migrations",
)
ZIPLINE_PACKAGES = ("jobs", "workers", "scheduler", "zipline_site")


def _forbidden(names: list[str]) -> list[str]:
    return [name for name in names if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)]


def _run_one_job_and_stop(broker: Broker, tmp_path: Path) -> dict[str, list[str]]:
    """Start a pool of two processes, run a job, stop it; the modules each process loaded, by file name."""
    reports = tmp_path / "modules"
    reports.mkdir()
    env = {
        REPORT_DIR_ENV: str(reports),
        "ZIPLINE_TEST_WITHOUT_TASKAPP": "1",  # its ready() imports the Tasks framework (tests/settings.py)
        "JQS_METRICS_ENABLED": "true",
        "JQS_METRICS_HOST": "127.0.0.1",
        "JQS_METRICS_PORT": str(free_port()),
    }
    job = client.enqueue("test_noop")
    with running(["runworkers", "--processes", "2"], tmp_path, **env) as pool:
        wait_for_workers(broker, 2, proc=pool)
        wait_for(lambda: Job.objects.get(pk=job.pk).status == Status.COMPLETED, 20, message="the job completed")
        pool.signal(signal.SIGTERM)
        assert pool.wait(30) == 0, pool.log()[-3000:]
    return {path.name: path.read_text().split() for path in sorted(reports.glob("*.txt"))}


@pytest.mark.django_db(transaction=True)
def test_worker_processes_load_neither_the_api_nor_the_admin_nor_the_dashboard(broker: Broker, tmp_path: Path) -> None:
    reports = _run_one_job_and_stop(broker, tmp_path)
    workers = {name: names for name, names in reports.items() if name.startswith("worker-")}
    supervisor = [names for name, names in reports.items() if name.startswith("supervisor-")]
    assert len(workers) == 2 and len(supervisor) == 1, sorted(reports)
    for name, names in [*workers.items(), ("supervisor", supervisor[0])]:
        assert {"jobs.models", "workers.process", "tests.procapp.processors"} <= set(names), name  # a real report
        assert _forbidden(names) == [], f"{name} loaded {_forbidden(names)}"
    # The supervisor imports the worker's code before it forks: its pages are shared, and a new
    # worker process starts without importing anything of ZipLine's.
    for names in workers.values():
        assert [name for name in set(names) - set(supervisor[0]) if name.split(".")[0] in ZIPLINE_PACKAGES] == []


def test_runworkers_installs_only_the_core_apps() -> None:
    lean = installed_apps(["manage.py", "runworkers", "--processes", "2"])
    assert "jobs" in lean and "django.contrib.auth" in lean and "django.contrib.contenttypes" in lean
    assert set(lean).isdisjoint(WEB_APPS)
    assert lean == [app for app in ALL_APPS if app in lean], "the order of the full list is kept"


@pytest.mark.parametrize(
    "argv",
    [
        ["manage.py", "migrate"],
        ["manage.py", "runscheduler"],
        ["gunicorn", "-c", "zipline_site/gunicorn.py", "zipline_site.wsgi"],
        ["pytest"],
        [],
    ],
)
def test_every_other_process_installs_every_app(argv: list[str]) -> None:
    assert installed_apps(argv) == list(ALL_APPS)


def test_an_app_the_workers_leave_out_is_installed_when_jqs_apps_lists_it() -> None:
    """The README: a processor that needs the admin, sessions, ... lists the app in ``JQS_APPS``."""
    script = "import sys; sys.argv = ['manage.py', 'runworkers']; from django.conf import settings; print(settings.INSTALLED_APPS)"
    env = process_env(JQS_APPS="django.contrib.sessions", DJANGO_SETTINGS_MODULE="zipline_site.settings")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    installed = ast.literal_eval(out.stdout.strip())
    assert "django.contrib.sessions" in installed and "jobs" in installed
    assert "django.contrib.admin" not in installed and "rest_framework" not in installed
