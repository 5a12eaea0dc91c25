"""Celery driver: prefork pool with 2 children, or 2 workers with a pool of 8 threads each."""

from __future__ import annotations

from celery import __version__ as celery_version

from bench.common import QueueDriver, WorkerCommand, venv_bin
from bench.peers import celery_tasks

APP = "bench.peers.celery_tasks"


def _worker(pool: str, concurrency: int, node: str) -> WorkerCommand:
    argv = [venv_bin("celery"), "--app", APP, "worker", "--pool", pool, "--concurrency", str(concurrency)]
    return WorkerCommand([*argv, "--hostname", f"{node}@%h", "--loglevel", "WARNING"])


class _CeleryDriver(QueueDriver):
    def library_version(self) -> str:
        return f"celery {celery_version}"

    def enqueue_noop(self) -> None:
        celery_tasks.noop.delay()

    def enqueue_sleep(self, seconds: float) -> None:
        celery_tasks.sleep.delay(seconds)

    def enqueue_stamp(self, enqueued_at: float) -> None:
        celery_tasks.stamp.delay(enqueued_at)

    def teardown(self) -> None:
        celery_tasks.app.close()


class CeleryPreforkDriver(_CeleryDriver):
    """One worker, prefork pool with one child per process wanted (Celery's default pool)."""

    def worker_commands(self, processes: int) -> list[WorkerCommand]:
        return [_worker("prefork", processes, "prefork")]


class CeleryThreadsDriver(_CeleryDriver):
    """One worker process per process wanted, each with a pool of 8 threads."""

    threads = 8

    def worker_commands(self, processes: int) -> list[WorkerCommand]:
        return [_worker("threads", self.threads, f"threads{i}") for i in range(processes)]
