"""Huey drivers: one consumer with 16 worker threads (`huey_consumer -w 16 -k thread`), or with one worker
process per core (`huey_consumer -w 2 -k process`)."""

from __future__ import annotations

import huey

from bench.common import QueueDriver, WorkerCommand, venv_bin
from bench.peers import huey_tasks


class HueyThreadsDriver(QueueDriver):
    """Huey's consumer is a single process; its thread workers are its documented choice for I/O."""

    threads = 16

    def library_version(self) -> str:
        return f"huey {huey.__version__}"

    def enqueue_noop(self) -> None:
        huey_tasks.noop()

    def enqueue_sleep(self, seconds: float) -> None:
        huey_tasks.sleep(seconds)

    def enqueue_stamp(self, enqueued_at: float) -> None:
        huey_tasks.stamp(enqueued_at)

    def worker_commands(self, processes: int) -> list[WorkerCommand]:
        argv = [venv_bin("huey_consumer"), "bench.peers.huey_tasks.huey", "--workers", str(self.threads)]
        return [WorkerCommand([*argv, "--worker-type", "thread", "--quiet"])]


class HueyProcessesDriver(HueyThreadsDriver):
    """Huey's process workers, one per core: its documented choice for CPU-bound work, and its fastest drain."""

    def worker_commands(self, processes: int) -> list[WorkerCommand]:
        argv = [venv_bin("huey_consumer"), "bench.peers.huey_tasks.huey", "--workers", str(processes)]
        return [WorkerCommand([*argv, "--worker-type", "process", "--quiet"])]
