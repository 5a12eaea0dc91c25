"""Dramatiq driver: `dramatiq --processes 2 --threads 8` (its defaults, spelled out)."""

from __future__ import annotations

import dramatiq

from bench.common import QueueDriver, WorkerCommand, venv_bin
from bench.peers import dramatiq_tasks


class DramatiqDriver(QueueDriver):
    """Dramatiq with the Redis broker."""

    threads = 8

    def library_version(self) -> str:
        return f"dramatiq {dramatiq.__version__}"

    def enqueue_noop(self) -> None:
        dramatiq_tasks.noop.send()

    def enqueue_sleep(self, seconds: float) -> None:
        dramatiq_tasks.sleep.send(seconds)

    def enqueue_stamp(self, enqueued_at: float) -> None:
        dramatiq_tasks.stamp.send(enqueued_at)

    def teardown(self) -> None:
        dramatiq_tasks.broker.close()

    def worker_commands(self, processes: int) -> list[WorkerCommand]:
        argv = [venv_bin("dramatiq"), "bench.peers.dramatiq_tasks", "--processes", str(processes)]
        return [WorkerCommand([*argv, "--threads", str(self.threads)])]
