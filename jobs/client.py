"""ZipLine's Python API: ``enqueue``, ``enqueue_many``, ``get``, ``cancel``, ``retry``, ``run_now``.

The public face of :mod:`jobs.service`, which does the work for every caller (this one, the REST
API, the admin and the dashboard), so all of them answer alike.

Rows are written in the caller's transaction; ids reach Redis when it commits (``on_commit``),
so a job submitted inside a transaction that rolls back never runs. Outside a transaction each
call commits before it returns.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jobs.models import Job
from jobs.service import cancel, retry, run_now
from jobs.service import find_job as get
from jobs.service import submit as enqueue_idempotent
from jobs.service import submit_many as enqueue_many
from jobs.validation import InvalidJob, JobSpec

__all__ = [
    "InvalidJob",
    "JobSpec",
    "cancel",
    "enqueue",
    "enqueue_idempotent",
    "enqueue_many",
    "get",
    "retry",
    "run_now",
]


def enqueue(
    type: str,  # noqa: A002 - the seed's field name
    payload: dict[str, Any] | None = None,
    *,
    name: str = "",
    queue: str = "default",
    priority: int = 0,
    schedule_at: datetime | str | None = None,
    delay: float | str | None = None,
    retry: dict[str, Any] | None = None,
    timeout: float | str | None = None,
    idempotency_key: str | None = None,
    group: str | None = None,
) -> Job:
    """Submit one job and return its row. Raises :class:`InvalidJob` and writes nothing on bad input.

    With an ``idempotency_key`` that was used before, the first job is returned and nothing is
    written (see :func:`enqueue_idempotent` to learn which happened). Jobs of one ``group`` take
    turns with the queue's other groups and share its group limits (docs/flow-control.md).
    """
    spec = JobSpec(
        type,
        {} if payload is None else payload,
        name,
        queue,
        priority,
        schedule_at,
        delay,
        retry,
        timeout,
        idempotency_key,
        group,
    )
    return enqueue_idempotent(spec)[0]
