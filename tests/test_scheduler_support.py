"""Helpers for the scheduler tests (no tests here): a private redis-server, real subprocesses, and an
emulated worker doing exactly what a worker does (broker.claim, states.claim, states.record,
broker.settle) with a ledger of executions, to prove exactly-once completion without the real pool."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from jobs import states
from jobs.broker import Broker, Settlement
from jobs.models import Outcome, Status
from tests.helpers import override_zipline, wait_for

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")
HAVE_RUNWORKERS = (ROOT / "workers" / "management" / "commands" / "runworkers.py").exists()
NO_RUNWORKERS = "needs manage.py runworkers (workers/management/commands/runworkers.py), which is not written yet"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A redis-server of the test's own on a free port, without persistence, that can be restarted."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="zipline-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", self.dir, "--daemonize", "no", "--loglevel", "warning"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._ping, timeout=10, message=f"redis-server on port {self.port}")

    def _ping(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        """Kill -9 and start again on the same port: every key is gone (no persistence)."""
        self.kill()
        self.start()

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def own_redis() -> Iterator[tuple[RedisServer, Broker]]:
    """Point the process's broker at a private redis-server (for tests that flush or restart Redis)."""
    from jobs import redis_client

    server = RedisServer()
    server.start()
    prefix = f"ziptest-{uuid.uuid4().hex[:10]}"
    try:
        with override_settings(REDIS_URL=server.url), override_zipline(redis_key_prefix=prefix):
            redis_client.reset()
            try:
                yield server, redis_client.get_broker()
            finally:
                redis_client.reset()
    finally:
        server.close()


def subprocess_database_url() -> str:
    """The URL of the database the tests run on, for subprocesses (pytest-django's test database)."""
    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    port = f":{s['PORT']}" if s.get("PORT") else ""
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST']}{port}/{s['NAME']}"



def subprocess_env(redis_url: str, prefix: str, state_dir: str | None = None, **values: Any) -> dict[str, str]:
    """The environment of a ``manage.py`` subprocess on the test database, a Redis and a key prefix."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JQS_")}
    env.update(
        DJANGO_SETTINGS_MODULE="zipline_site.settings",
        JQS_SECRET_KEY="test-secret-key-not-for-production",
        JQS_DATABASE_URL=subprocess_database_url(),
        JQS_REDIS_URL=redis_url,
        JQS_REDIS_KEY_PREFIX=prefix,
        JQS_LOG_FORMAT="json",
        JQS_LOG_LEVEL="info",
        PYTHONUNBUFFERED="1",
    )
    if state_dir:
        env["JQS_STATE_DIR"] = state_dir
    env.update({k: str(v) for k, v in values.items()})
    return env


@dataclass
class Proc:
    """A ``manage.py`` subprocess in its own process group, its output in a file."""

    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, args: list[str], env: dict[str, str], log_dir: str, name: str) -> Proc:
        log = Path(log_dir) / f"{name}.log"
        handle = log.open("wb")
        process = subprocess.Popen(
            [PYTHON, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
        handle.close()
        return cls(process, log)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def signal(self, signum: int, group: bool = False) -> None:
        if self.process.poll() is None:
            if group:
                os.killpg(self.process.pid, signum)
            else:
                self.process.send_signal(signum)

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM, then SIGKILL the group if it does not exit in ``timeout``; the exit status."""
        self.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait(10)


@contextlib.contextmanager
def processes() -> Iterator[Callable[..., Proc]]:
    """Start ``manage.py`` subprocesses that are all stopped when the block ends."""
    started: list[Proc] = []
    log_dir = tempfile.mkdtemp(prefix="zipline-procs-")

    def start(args: list[str], env: dict[str, str], name: str = "proc") -> Proc:
        proc = Proc.start(args, env, log_dir, f"{name}-{len(started)}")
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            if proc.process.poll() is None:
                proc.stop(10)
        for proc in started:
            if proc.process.returncode not in (0, None, -9, -15):
                sys.stderr.write(f"--- {proc.log.name} (exit {proc.process.returncode})\n{proc.output()[-4000:]}\n")
        shutil.rmtree(log_dir, ignore_errors=True)


# -- an emulated worker -------------------------------------------------------------------------


@dataclass
class Ledger:
    """Every execution (a successful states.claim) by job id, across emulated workers."""

    runs: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, job_ids: list[str]) -> None:
        with self.lock:
            self.runs.update(job_ids)


def work_once(
    broker: Broker,
    queue: str,
    token: str,
    ledger: Ledger,
    count: int = 50,
    lease_ms: int = 60_000,
    outcome: Callable[[Any], str] = lambda job: Outcome.COMPLETED,
) -> int:
    """One round of a worker: claim, mark running, 'run', record, settle. Returns jobs run."""
    claim = broker.claim(queue, token, count, lease_ms)
    if not claim.ids:
        return 0
    jobs = states.claim(claim.ids, token)
    runnable = {str(j.pk) for j in jobs}
    # Ids whose rows are not runnable (finished, cancelled, gone): drop their leases.
    stale = [Settlement(i, "ack") for i in claim.ids if i not in runnable]
    if stale:
        broker.settle(queue, token, stale)
    if not jobs:
        return 0
    ledger.add(sorted(runnable))
    now = timezone.now()
    results = [
        states.AttemptResult(job=j, outcome=outcome(j), started_at=j.started_at or now, finished_at=now, duration=0.0)
        for j in jobs
    ]
    settlements = []
    for rec in states.record(results):
        if rec.status == Status.RETRYING and rec.due is not None:
            settlements.append(Settlement(str(rec.job.pk), "retry", int(rec.due.timestamp() * 1000), rec.job.priority))
        else:
            settlements.append(Settlement(str(rec.job.pk), "ack"))
    broker.settle(queue, token, settlements)
    return len(jobs)


class WorkerThread(threading.Thread):
    """An emulated worker looping on ``work_once`` until stopped; survives Redis being down."""

    def __init__(self, broker: Broker, queues: list[str], ledger: Ledger, name: str, **kwargs: Any) -> None:
        super().__init__(name=name, daemon=True)
        self.broker, self.queues, self.ledger, self.kwargs = broker, queues, ledger, kwargs
        self.stopping = threading.Event()
        self.errors = 0

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                done = 0
                for queue in self.queues:
                    try:
                        done += work_once(self.broker, queue, self.name, self.ledger, **self.kwargs)
                    except redis.RedisError:
                        self.errors += 1
                        time.sleep(0.05)
                if not done:
                    self.stopping.wait(0.02)
        finally:
            connection.close()

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)


class SchedulerThread(threading.Thread):
    """A :class:`scheduler.service.Scheduler` in a thread, with its own database connection."""

    def __init__(self, broker: Broker | None = None, identity: str | None = None) -> None:
        from scheduler.service import Scheduler

        super().__init__(name=identity or "scheduler", daemon=True)
        self.scheduler = Scheduler(broker, identity=identity)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.scheduler.run()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            connection.close()

    def stop(self) -> None:
        self.scheduler.stop()
        self.join(30)
        assert not self.is_alive(), "scheduler thread did not stop"
