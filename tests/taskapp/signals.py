"""In worker processes started with ``ZIPLINE_TEST_TASK_SIGNALS=1``: each ``task_started`` and
``task_finished`` pushes ``signal|id|status|attempts|pid`` to the Redis list ``<prefix>:task-signals``."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings

from jobs.tasks_backend.compat import task_finished, task_started
from tests.procapp.processors import client


def signals_key() -> str:
    return f"{settings.ZIPLINE.redis.key_prefix}:task-signals"


def _record(name: str, task_result: Any) -> None:
    line = f"{name}|{task_result.id}|{task_result.status}|{task_result.attempts}|{os.getpid()}"
    client().rpush(signals_key(), line)


def on_started(sender: Any, task_result: Any, **kwargs: Any) -> None:
    _record("started", task_result)


def on_finished(sender: Any, task_result: Any, **kwargs: Any) -> None:
    _record("finished", task_result)


def connect() -> None:
    if os.environ.get("ZIPLINE_TEST_TASK_SIGNALS") == "1":
        task_started.connect(on_started, dispatch_uid="taskapp-started")
        task_finished.connect(on_finished, dispatch_uid="taskapp-finished")
