"""arq worker settings and (async) jobs; arq's own Redis pool (ctx["redis"]) is on the bench db.

The sleeping job uses asyncio.sleep: arq runs jobs as coroutines, so a blocking sleep would stall
the worker's event loop. Run as a module, this starts one worker with arq's ``run_worker`` and
logging at WARNING (the ``arq`` command logs two INFO lines per job; the other peers log none).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from arq.connections import RedisSettings
from arq.worker import run_worker

from bench.common import KEY_DONE, KEY_FIRST, KEY_LATENCY, REDIS_URL


async def noop(ctx: dict[str, Any]) -> None:
    """No-op job (same Redis commands as common.job_noop)."""
    pipe = ctx["redis"].pipeline(transaction=False)
    pipe.set(KEY_FIRST, repr(time.time()), nx=True)
    pipe.incr(KEY_DONE)
    await pipe.execute()


async def sleep(ctx: dict[str, Any], seconds: float) -> None:
    """Sleeping job (same Redis commands as common.job_sleep)."""
    await ctx["redis"].set(KEY_FIRST, repr(time.time()), nx=True)
    await asyncio.sleep(seconds)
    await ctx["redis"].incr(KEY_DONE)


async def stamp(ctx: dict[str, Any], enqueued_at: float) -> None:
    """Latency job (same Redis commands as common.job_stamp)."""
    started = time.time()
    pipe = ctx["redis"].pipeline(transaction=False)
    pipe.rpush(KEY_LATENCY, repr(started - enqueued_at))
    pipe.incr(KEY_DONE)
    await pipe.execute()


class WorkerSettings:
    """arq defaults apart from the function list and the Redis URL."""

    functions = [noop, sleep, stamp]
    redis_settings = RedisSettings.from_dsn(REDIS_URL)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    run_worker(WorkerSettings)
