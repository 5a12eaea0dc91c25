"""How WatchJob sees a job change: the one function behind it, :func:`changes`.

It polls the job's row every :data:`INTERVAL` seconds (one indexed read of three columns) and yields the
job, loaded in full, whenever its status, attempts or cancel request differ from the last it yielded,
starting with the job as it is. It stops after yielding a finished job (completed, failed, cancelled or
expired), at the deadline, or as soon as ``ended`` is set (the client went away).

Polling is the simple, bounded way to follow a row from any process. A notification of a job's end
through Redis may replace the wait between reads later; only this function would change.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from jobs.models import FINISHED, Job
from jobs.service import get_job, job_id_of
from jobs.service.errors import JobNotFound

#: Seconds between two reads of the row.
INTERVAL = 0.1


def changes(job_id: object, deadline: float, ended: threading.Event, interval: float = INTERVAL) -> Iterator[Job]:
    """The job now, then at each change, until it is finished; ``deadline`` is on ``time.monotonic()``.

    Raises :class:`JobNotFound` for an unknown id, or a job deleted while watched.
    """
    pk = job_id_of(job_id)
    last: tuple[str, int, bool] | None = None
    while True:
        seen = Job.objects.filter(pk=pk).values_list("status", "attempts", "cancel_requested").first()
        if seen is None:
            raise JobNotFound(pk)
        if seen != last:
            job = get_job(pk)  # may be newer than ``seen``: what it shows is what was yielded
            last = (job.status, job.attempts, job.cancel_requested)
            yield job
            if job.status in FINISHED:
                return
        remaining = deadline - time.monotonic()
        if remaining <= 0 or ended.wait(min(interval, remaining)):
            return
