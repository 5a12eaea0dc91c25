"""arq driver: 2 worker processes (run_worker(WorkerSettings) twice), arq's defaults otherwise."""

from __future__ import annotations

import asyncio
import sys
from importlib.metadata import version

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

from bench.common import QueueDriver, WorkerCommand


class ArqDriver(QueueDriver):
    """arq is asyncio-only: enqueueing runs on an event loop owned by the driver."""

    def setup(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.pool: ArqRedis = self.loop.run_until_complete(create_pool(RedisSettings.from_dsn(self.redis_url)))

    def teardown(self) -> None:
        if hasattr(self, "loop"):
            self.loop.run_until_complete(self.pool.aclose())
            self.loop.close()

    def library_version(self) -> str:
        return f"arq {version('arq')}"

    def enqueue_noop(self) -> None:
        self.loop.run_until_complete(self.pool.enqueue_job("noop"))

    def enqueue_sleep(self, seconds: float) -> None:
        self.loop.run_until_complete(self.pool.enqueue_job("sleep", seconds))

    def enqueue_stamp(self, enqueued_at: float) -> None:
        self.loop.run_until_complete(self.pool.enqueue_job("stamp", enqueued_at))

    def enqueue_noop_serial(self, count: int) -> None:
        """One awaited enqueue_job after the other, inside one coroutine (how async code calls it)."""

        async def serial() -> None:
            for _ in range(count):
                await self.pool.enqueue_job("noop")

        self.loop.run_until_complete(serial())

    def worker_commands(self, processes: int) -> list[WorkerCommand]:
        return [WorkerCommand([sys.executable, "-m", "bench.peers.arq_tasks"]) for _ in range(processes)]
