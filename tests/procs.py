"""Real processes for end-to-end tests: ``manage.py runworkers`` and friends, started as subprocesses.

They use the test database (committed data: tests that start processes use transactional DB
tests) and the test's own Redis key prefix, and are killed with their whole process group after.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


_handed_out: set[int] = set()


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on and that this process has not handed out before.

    Tests often choose several ports before any server binds one (a cluster's client and bus ports), and the
    kernel may offer a released port again: never the same port twice keeps those choices apart.
    """
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def database_url() -> str:
    """The URL of the database this test is using (the test database, not the configured one)."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    return f"postgres://{user}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def process_env(**overrides: Any) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "tests.settings"),
            "JQS_DATABASE_URL": database_url(),
            "JQS_REDIS_URL": settings.REDIS_URL,
            "JQS_REDIS_KEY_PREFIX": settings.ZIPLINE.redis.key_prefix,
            "JQS_SECRET_KEY": "test-secret-key-not-for-production",
            "JQS_LOG_FORMAT": "json",
            "JQS_LOG_LEVEL": "info",
            "JQS_METRICS_ENABLED": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update({key: str(value) for key, value in overrides.items()})
    return env


def manage(*args: str, **env: Any) -> subprocess.CompletedProcess[str]:
    """Run one ``manage.py`` command to its end, on the test's database and Redis (``env`` overrides)."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=process_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class Proc:
    """A started subprocess with its log file; ``stop()`` kills its whole process group."""

    def __init__(self, args: Sequence[str], env: dict[str, str], log: Path) -> None:
        self.args = list(args)
        self.log_path = log
        self._log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def signal(self, signum: int) -> None:
        os.kill(self.popen.pid, signum)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def records(self) -> list[dict[str, Any]]:
        """Its JSON log records."""
        from tests.helpers import json_records

        return json_records(self.log())

    def children(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def stop(self) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait(timeout=10)
        else:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)  # orphans of a dead supervisor, if any
            except ProcessLookupError:
                pass
        self._log.close()


@contextmanager
def running(args: Sequence[str], tmp_path: Path, name: str = "proc", **env: Any) -> Iterator[Proc]:
    proc = Proc(args, process_env(**env), tmp_path / f"{name}.log")
    try:
        yield proc
    finally:
        proc.stop()


def wait_for_workers(broker: Any, count: int, timeout: float = 20.0, proc: Proc | None = None) -> list[dict[str, Any]]:
    """Wait until ``count`` worker processes publish heartbeats."""
    from jobs.broker.heartbeat import live_workers

    deadline = time.monotonic() + timeout
    while True:
        workers = live_workers(broker)
        if len(workers) >= count:
            return workers
        if proc is not None and proc.popen.poll() is not None:
            raise AssertionError(f"process exited with {proc.popen.returncode}:\n{proc.log()[-3000:]}")
        if time.monotonic() > deadline:
            log = proc.log()[-3000:] if proc else ""
            raise AssertionError(f"{len(workers)} of {count} workers up after {timeout}s\n{log}")
        time.sleep(0.05)
