"""ZipLine's drivers for the benchmark harness, with every job recorded in PostgreSQL.

They run in the project's own venv. Jobs go through the public Python API (``jobs.enqueue`` and
``jobs.enqueue_many``); the workers are ``manage.py runworkers`` with the configuration's defaults
(``JQS_WORKER_MAX_CONCURRENCY`` 100 shared by the processes, a JSON log line per job at info,
metrics on). ``ZipLineDriver`` is the headline row; ``ZipLineQuietDriver`` is the tuned row (logs at
warning, metrics off), which is never the headline. The headline row also measures the floor of
its single enqueue (``bench/enqueue_floor.py``) in the same run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any, ClassVar

from bench.common import ROOT, QueueDriver, WorkerCommand
from bench.procs import free_port

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.zipline_settings")
DATABASE = "zipline_bench"


def _prepare_database() -> None:
    """Create and migrate the benchmark's own database (once)."""
    exists = subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-Atc",
            f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'",  # noqa: S608 - a constant
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not exists:
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"CREATE DATABASE {DATABASE}"], check=True)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.zipline_settings"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)


class ZipLineDriver(QueueDriver):
    """ZipLine: Redis dispatch, a PostgreSQL row per job and per attempt."""

    supports_bulk: ClassVar[bool] = True
    has_enqueue_floor: ClassVar[bool] = True
    #: Settings that differ from ZipLine's defaults (none: this is the headline row).
    tuned: ClassVar[dict[str, str]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        os.environ.update(self.tuned)  # read by django.setup() in setup(), and by the workers
        self._floor: Any = None

    def setup(self) -> None:
        _prepare_database()
        import django

        django.setup()
        from django.db import connection

        from jobs.broker import reset_broker

        reset_broker()
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE jobs_job CASCADE")
        from jobs import JobSpec, enqueue, enqueue_many

        self._enqueue, self._enqueue_many, self._spec = enqueue, enqueue_many, JobSpec

    def library_version(self) -> str:
        from zipline_site import __version__

        return f"zipline {__version__} (PostgreSQL records)"

    def enqueue_noop(self) -> None:
        self._enqueue("bench_noop")

    def enqueue_sleep(self, seconds: float) -> None:
        self._enqueue("bench_sleep", {"seconds": seconds})

    def enqueue_stamp(self, enqueued_at: float) -> None:
        self._enqueue("bench_stamp", {"enqueued_at": enqueued_at})

    def enqueue_noop_bulk(self, count: int) -> None:
        self._enqueue_many([self._spec("bench_noop") for _ in range(count)])

    def enqueue_floor_serial(self, count: int) -> None:
        """The same row committed with bare psycopg, then the same Redis push, ``count`` times."""
        if self._floor is None:
            from bench.enqueue_floor import floor_for

            self._floor = floor_for(str(self._enqueue("bench_noop").pk))
        self._floor.enqueue(count)

    def teardown(self) -> None:
        if self._floor is not None:
            self._floor.close()
            self._floor = None

    def worker_commands(self, processes: int) -> list[WorkerCommand]:
        # Metrics on a free port of this host: the default 9091 may be taken by another process here.
        env = {
            "DJANGO_SETTINGS_MODULE": "bench.zipline_settings",
            "JQS_METRICS_HOST": "127.0.0.1",
            "JQS_METRICS_PORT": str(free_port()),
            **self.tuned,
        }
        return [WorkerCommand([sys.executable, "manage.py", "runworkers", "--processes", str(processes)], env)]


class ZipLineQuietDriver(ZipLineDriver):
    """The tuned configuration: logs at warning (no line per job), metrics off. Never the headline."""

    has_enqueue_floor: ClassVar[bool] = False
    tuned: ClassVar[dict[str, str]] = {"JQS_LOG_LEVEL": "warning", "JQS_METRICS_ENABLED": "false"}
