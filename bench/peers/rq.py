"""RQ driver: a worker pool of 2 processes, either forking a work horse per job or not."""

from __future__ import annotations

from typing import ClassVar

from redis import Redis
from rq import Queue
from rq import __version__ as rq_version

from bench.common import QueueDriver, WorkerCommand, venv_bin
from bench.peers import rq_tasks

QUEUE = "bench"


class _RQDriver(QueueDriver):
    supports_bulk = True
    worker_class: ClassVar[str]

    def setup(self) -> None:
        self.queue = Queue(QUEUE, connection=Redis.from_url(self.redis_url))

    def library_version(self) -> str:
        return f"rq {rq_version}"

    def enqueue_noop(self) -> None:
        self.queue.enqueue(rq_tasks.noop)

    def enqueue_sleep(self, seconds: float) -> None:
        self.queue.enqueue(rq_tasks.sleep, seconds)

    def enqueue_stamp(self, enqueued_at: float) -> None:
        self.queue.enqueue(rq_tasks.stamp, enqueued_at)

    def enqueue_noop_bulk(self, count: int) -> None:
        self.queue.enqueue_many([Queue.prepare_data(rq_tasks.noop) for _ in range(count)])

    def worker_commands(self, processes: int) -> list[WorkerCommand]:
        argv = [venv_bin("rq"), "worker-pool", "--num-workers", str(processes), "--worker-class", self.worker_class]
        return [WorkerCommand([*argv, "--url", self.redis_url, "--logging-level", "WARNING", QUEUE])]


class RQDefaultDriver(_RQDriver):
    """rq.worker.Worker: forks a work horse for every job (RQ's default)."""

    worker_class = "rq.worker.Worker"


class RQSimpleDriver(_RQDriver):
    """rq.worker.SimpleWorker: runs jobs in the worker process itself."""

    worker_class = "rq.worker.SimpleWorker"
