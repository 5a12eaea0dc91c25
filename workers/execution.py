"""Runs one attempt of one job: builds its context, calls its processor, and says how it ended.

Nothing here touches the database or Redis; the worker process records the outcome in batches.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import traceback as tb
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from jobs.ids import id_text
from jobs.models import Job, Outcome
from jobs.registry import (
    Context,
    JobCancelled,
    JobProcessor,
    PermanentError,
    UnknownJobType,
    is_async,
    registry,
    timeout_default,
)

logger = logging.getLogger("zipline.job")


@dataclass
class Running:
    """A job this worker holds: its row, context, and when it started (monotonic and wall clock)."""

    job: Job
    ctx: Context
    processor: JobProcessor | None
    timeout: float
    started: float
    started_at: datetime
    released: bool = False  # handed back: its ending, if one comes, is dropped
    ended: bool = False  # its ending is on its way to the database


@dataclass
class Ending:
    """How an attempt ended, before it is recorded."""

    running: Running
    outcome: str
    result: Any = None
    error: str = ""
    traceback: str = ""
    permanent: bool = False
    duration: float = 0.0
    finished_at: datetime | None = None
    handed_back: bool = False  # stopped for shutdown: release, do not charge


def prepare(job: Job, worker_id: str, default_timeout: float) -> Running:
    """Resolve the processor and timeout and build the context of a claimed job."""
    try:
        proc: JobProcessor | None = registry.get(job.type)
    except UnknownJobType:
        proc = None
    timeout = job.timeout or (timeout_default(proc) if proc else None) or default_timeout
    started = time.monotonic()
    ctx = Context(job_id=id_text(job), attempt=job.attempt_number, deadline=started + timeout, job_type=job.type)
    return Running(job, ctx, proc, timeout, started, timezone.now())


def _ending(running: Running, outcome: str, **fields: Any) -> Ending:
    return Ending(
        running,
        outcome,
        duration=time.monotonic() - running.started,
        finished_at=timezone.now(),
        **fields,
    )


def conclude(running: Running, result: Any = None, error: BaseException | None = None) -> Ending:
    """Turn what the processor returned or raised into an :class:`Ending`.

    A result that comes after the deadline is a timeout; an exception raised because the worker is
    shutting down hands the job back (a job that returned as the shutdown came has done its work:
    it is recorded, not run again); a cancelled job ends cancelled.
    """
    ctx = running.ctx
    late = time.monotonic() > ctx.deadline
    if ctx.cancelled and ctx.cancel_reason == "shutdown" and (error is not None or late):
        return _ending(running, Outcome.CANCELLED, handed_back=True)
    if late or (ctx.cancelled and ctx.cancel_reason == "timeout"):
        message = f"timeout: the attempt ran longer than its {running.timeout:g}s limit"
        return _ending(running, Outcome.TIMEOUT, error=message)
    if ctx.cancelled and ctx.cancel_reason == "cancelled":
        return _ending(running, Outcome.CANCELLED, error="cancelled while running")
    if error is None:
        return _ending(running, Outcome.COMPLETED, result=result)
    if isinstance(error, JobCancelled):
        return _ending(running, Outcome.CANCELLED, error=_text_of(error))
    trace = "".join(tb.format_exception(type(error), error, error.__traceback__))
    message = f"{type(error).__name__}: {_text_of(error)}"
    return _ending(running, Outcome.FAILED, error=message, traceback=trace, permanent=isinstance(error, PermanentError))


def described(describe: Callable[[Any], str], value: Any, what: str) -> str:
    """``describe(value)`` (str or repr), which a processor's own classes can break or make recurse;
    then a placeholder saying ``what`` failed, since the job must still end and be recorded."""
    try:
        return describe(value)
    except Exception as exc:  # noqa: BLE001
        return f"<{what} failed: {type(exc).__name__}>"


def _text_of(error: BaseException) -> str:
    return described(str, error, "str() of the exception")


class ProcessorExited(Exception):
    """An ``async`` processor raised SystemExit or KeyboardInterrupt: a failure of the job, like any other.

    Left as they are, asyncio re-raises both out of the event loop, which would stop the loop for
    every other job of the process.
    """


async def _guarded(running: Running) -> Any:
    assert running.processor is not None
    try:
        return await running.processor.process(running.job, running.ctx)
    except (SystemExit, KeyboardInterrupt) as exc:
        raise ProcessorExited(f"the processor raised {type(exc).__name__}({_text_of(exc)})") from None


def run_sync(running: Running) -> Ending:
    """Run a synchronous processor on the calling thread."""
    if running.processor is None:
        return _ending(
            running,
            Outcome.FAILED,
            error=f"unknown job type {running.job.type!r}: no processor registered on this worker",
            permanent=True,
        )
    try:
        value = running.processor.process(running.job, running.ctx)
    except BaseException as exc:  # noqa: BLE001 - a job's failure must never kill its worker
        if isinstance(exc, (KeyboardInterrupt, SystemExit)) and threading.current_thread() is threading.main_thread():
            raise
        return conclude(running, error=exc)
    return conclude(running, result=value)


async def run_async(running: Running) -> Ending:
    """Run an ``async`` processor on the worker's event loop; its deadline cancels the coroutine."""
    try:
        value = await asyncio.wait_for(_guarded(running), timeout=running.ctx.time_left())
    except TimeoutError:
        running.ctx.cancel("timeout")
        return conclude(running, error=TimeoutError("deadline passed"))
    except asyncio.CancelledError:
        return conclude(running, error=JobCancelled(running.ctx.cancel_reason or "cancelled"))
    except Exception as exc:  # noqa: BLE001
        return conclude(running, error=exc)
    return conclude(running, result=value)


def wants_event_loop(running: Running) -> bool:
    return running.processor is not None and is_async(running.processor)
