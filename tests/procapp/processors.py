"""Job types the tests run through real worker processes. Each leaves evidence in Redis.

``payload["key"]`` names the Redis key (under the test's own prefix) where a job records itself.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import time
from typing import Any, cast

import redis
from django.conf import settings

from jobs.broker.cluster import LazyCluster, cluster_target
from jobs.registry import Context, JobCancelled, processor, registry

_client: dict[int, redis.Redis] = {}


def client() -> redis.Redis:
    pid = os.getpid()
    if pid not in _client:
        # ZipLine's Redis, a cluster on make test-cluster; or a Redis the test names, which outlives a failover
        url = os.environ.get("ZIPLINE_TEST_LEDGER_REDIS_URL") or settings.REDIS_URL
        target = cluster_target(url, settings.ZIPLINE.redis.cluster)
        _client[pid] = cast(redis.Redis, LazyCluster(target)) if target else redis.Redis.from_url(url)
    return _client[pid]


def ledger(payload: dict[str, Any], ctx: Context, event: str) -> None:
    key = payload.get("key")
    if key:
        client().rpush(
            key, f"{ctx.job_id}|{ctx.attempt}|{os.getpid()}|{event}|{time.time():.6f}|{payload.get('tag', '')}"
        )


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for this one")


def _misbehaviour(how: str) -> BaseException:
    return {"exit": SystemExit(3), "interrupt": KeyboardInterrupt(), "unprintable": _Unprintable()}[how]


def register() -> None:
    if "test_noop" in registry:
        return

    @processor("test_noop")
    def noop(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
        return {"echo": payload}

    @processor("test_return")
    def give_back(payload: dict[str, Any], ctx: Context) -> Any:
        """Returns (or raises) what the payload describes, including what PostgreSQL cannot store:
        NaN and infinities in JSON, NUL characters and lone surrogates (written ``<NUL>`` and
        ``<SUR>`` in the payload, which cannot hold them either)."""
        if "raise" in payload:
            raise RuntimeError(payload["raise"].replace("<NUL>", "\x00"))
        return {
            "number": float(payload.get("number", 0)),
            "text": payload.get("text", "").replace("<NUL>", "\x00").replace("<SUR>", "\ud800"),
        }

    @processor("test_misbehave")
    def misbehave(payload: dict[str, Any], ctx: Context) -> None:
        """Raises what a processor should not: SystemExit, KeyboardInterrupt, an exception str() breaks."""
        raise _misbehaviour(payload["how"])

    @processor("test_async_misbehave")
    async def async_misbehave(payload: dict[str, Any], ctx: Context) -> None:
        await asyncio.sleep(0)
        raise _misbehaviour(payload["how"])

    @processor("test_record")
    def record(payload: dict[str, Any], ctx: Context) -> str:
        ledger(payload, ctx, "start")
        if payload.get("count"):
            client().hincrby(payload["count"], ctx.job_id, 1)
        return "ok"

    @processor("test_sleep")
    def sleep(payload: dict[str, Any], ctx: Context) -> str:
        ledger(payload, ctx, "start")
        seconds = float(payload.get("seconds", 1))
        if payload.get("hard"):
            time.sleep(seconds)  # ignores cancellation: only a process kill stops it
        else:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                ctx.check()
                time.sleep(0.01)
        ledger(payload, ctx, "end")
        return "slept"

    @processor("test_limited", concurrency=2)
    def limited(payload: dict[str, Any], ctx: Context) -> str:
        """test_sleep's twin whose type allows two running at once (docs/flow-control.md)."""
        return str(sleep(payload, ctx))

    @processor("test_fail", max_retries=3, backoff="fixed", initial_delay=0.1)
    def fail(payload: dict[str, Any], ctx: Context) -> None:
        ledger(payload, ctx, "start")
        raise RuntimeError(payload.get("message", "boom"))

    @processor("test_crash")
    def crash(payload: dict[str, Any], ctx: Context) -> None:
        ledger(payload, ctx, "start")
        os.kill(os.getpid(), signal.SIGKILL)

    @processor("test_async_sleep")
    async def async_sleep(payload: dict[str, Any], ctx: Context) -> str:
        ledger(payload, ctx, "start")
        await asyncio.sleep(float(payload.get("seconds", 0.1)))
        ledger(payload, ctx, "end")
        return "slept"

    @processor("test_gc_state")
    def gc_state(payload: dict[str, Any], ctx: Context) -> dict[str, int]:
        """How many objects the garbage collector leaves alone in this worker process, and whether it runs."""
        return {"frozen": gc.get_freeze_count(), "enabled": int(gc.isenabled())}

    @processor("test_cancellable")
    def cancellable(payload: dict[str, Any], ctx: Context) -> str:
        ledger(payload, ctx, "start")
        try:
            while True:
                ctx.check()
                time.sleep(0.01)
        except JobCancelled:
            ledger(payload, ctx, "cancelled")
            raise

    @processor("test_soak")
    def soak(payload: dict[str, Any], ctx: Context) -> str:
        """The soak test's job: notes each run in a file ledger (one file per process), which outlives
        a Redis that loses its data; sleeps ``seconds`` (cooperatively); fails while ``attempt <= fail``."""
        with open(os.path.join(payload["ledger"], f"{os.getpid()}.log"), "a") as out:
            out.write(f"{ctx.job_id}|{ctx.attempt}|{os.getpid()}|{time.time():.6f}\n")
        end = time.monotonic() + float(payload.get("seconds", 0))
        while time.monotonic() < end:
            ctx.check()
            time.sleep(0.01)
        if ctx.attempt <= int(payload.get("fail", 0)):
            raise RuntimeError(f"failing attempt {ctx.attempt} on purpose")
        return "ok"

    @processor("test_flow", max_retries=0)
    def flow(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
        """A workflow's job: notes its start and end in the ledger, sleeps ``seconds``, fails when asked
        (``fail``), and returns its tag with its parents' results (``ctx.parent_results``)."""
        ledger(payload, ctx, "start")
        end = time.monotonic() + float(payload.get("seconds", 0))
        while time.monotonic() < end:
            ctx.check()
            time.sleep(0.01)
        if payload.get("fail"):
            raise RuntimeError(f"{payload.get('tag')} fails on purpose")
        parents = ctx.parent_results
        ledger(payload, ctx, "end")
        return {"tag": payload.get("tag", ""), "parents": parents}


register()
