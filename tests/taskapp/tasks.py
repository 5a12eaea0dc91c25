"""Django tasks the tests enqueue through ZipLine's backend and run on real workers.

Aliases (tests/settings.py): ``default`` is the project's own backend; ``quick`` retries after 50 ms;
``patient`` after a minute; ``short`` gives each attempt 0.5 s and no retry. Tasks that leave evidence push it to a Redis list.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from jobs.tasks_backend.compat import TaskContext, task
from tests.procapp.processors import client


class TaskAppError(Exception):
    """An exception of the app's own, whose dotted path the result must name."""


@task()
def noop(*args: Any, **kwargs: Any) -> None:
    return None


@task()
async def noop_async(*args: Any, **kwargs: Any) -> None:
    return None


@task()
def calculate_meaning_of_life() -> int:
    return 42


@task()
def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": list(args), "kwargs": kwargs, "pid": os.getpid()}


@task()
async def echo_async(*args: Any, **kwargs: Any) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"args": list(args), "kwargs": kwargs, "pid": os.getpid()}


@task(backend="short")
def failing_value_error() -> None:
    raise ValueError("This task failed due to ValueError")


@task(backend="short")
def failing_own_error() -> None:
    raise TaskAppError("an error of the app's own")


@task(backend="short")
def failing_system_exit() -> None:
    raise SystemExit("This task failed due to SystemExit")


@task(backend="short")
def complex_return_value() -> object:
    return object()  # not JSON: the attempt fails with the framework's TypeError


@task(takes_context=True)
def get_task_id(context: TaskContext) -> str:
    return str(context.task_result.id)


@task(backend="quick", takes_context=True)
def flaky(context: TaskContext, succeed_on: int) -> dict[str, Any]:
    """Fails until its ``succeed_on``-th attempt; returns what its context says about the attempts."""
    if context.attempt < succeed_on:
        raise RuntimeError(f"attempt {context.attempt} fails on purpose")
    return {"attempt": context.attempt, "worker_ids": list(context.task_result.worker_ids)}


@task(backend="short")
def hang() -> None:
    time.sleep(30)  # ignores its timeout: the worker replaces its process


@task(backend="short")
async def hang_async() -> None:
    await asyncio.sleep(30)


@task()
def record(key: str, tag: str) -> str:
    """Pushes ``tag`` to the Redis list ``key``: the order in which tasks ran."""
    client().rpush(key, tag)
    return tag


@task(backend="quick", takes_context=True)
async def flaky_async(context: TaskContext, succeed_on: int) -> int:
    """The async form of :func:`flaky`: its earlier attempts are read off the event loop."""
    await asyncio.sleep(0)
    if context.attempt < succeed_on:
        raise RuntimeError(f"attempt {context.attempt} fails on purpose")
    return int(context.attempt)
