"""Helpers for the scheduler tests (no tests here): an emulated worker doing exactly what a worker does
(broker.claim, states.claim, states.record, broker.settle) with a ledger of executions, to prove
exactly-once completion without the real pool, and a scheduler running in a thread.

Real processes and a private redis-server come from ``tests.procs``, ``tests.redis_server`` and the
``own_redis`` fixture."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import connection
from django.utils import timezone

from jobs import states
from jobs.broker import Broker, BrokerUnavailable, Settlement, due_score
from jobs.models import Outcome, Status

ROOT = Path(__file__).resolve().parent.parent
HAVE_RUNWORKERS = (ROOT / "workers" / "management" / "commands" / "runworkers.py").exists()
NO_RUNWORKERS = "needs manage.py runworkers (workers/management/commands/runworkers.py)"


# -- an emulated worker -------------------------------------------------------------------------


@dataclass
class Ledger:
    """Every execution (a successful states.claim) by job id, across emulated workers."""

    runs: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, job_ids: list[str]) -> None:
        with self.lock:
            self.runs.update(job_ids)


def work_once(
    broker: Broker,
    queue: str,
    token: str,
    ledger: Ledger,
    count: int = 50,
    lease_ms: int = 60_000,
    outcome: Callable[[Any], str] = lambda job: Outcome.COMPLETED,
) -> int:
    """One round of a worker: claim, mark running, 'run', record, settle. Returns jobs run."""
    claim = broker.claim(queue, token, count, lease_ms)
    if not claim.ids:
        return 0
    jobs = states.claim(claim.ids, token)
    runnable = {str(j.pk) for j in jobs}
    # Ids whose rows are not runnable (finished, cancelled, gone): drop their leases.
    stale = [Settlement(i, "ack") for i in claim.ids if i not in runnable]
    if stale:
        broker.settle(queue, token, stale)
    if not jobs:
        return 0
    ledger.add(sorted(runnable))
    now = timezone.now()
    results = [
        states.AttemptResult(job=j, outcome=outcome(j), started_at=j.started_at or now, finished_at=now, duration=0.0)
        for j in jobs
    ]
    settlements = []
    for rec in states.record(results):
        if rec.status == Status.RETRYING and rec.due is not None:
            settlements.append(Settlement(str(rec.job.pk), "retry", due_score(rec.due), rec.job.priority))
        else:
            settlements.append(Settlement(str(rec.job.pk), "ack"))
    broker.settle(queue, token, settlements)
    return len(jobs)


class WorkerThread(threading.Thread):
    """An emulated worker looping on ``work_once`` until stopped; survives Redis being down."""

    def __init__(self, broker: Broker, queues: list[str], ledger: Ledger, name: str, **kwargs: Any) -> None:
        super().__init__(name=name, daemon=True)
        self.broker, self.queues, self.ledger, self.kwargs = broker, queues, ledger, kwargs
        self.stopping = threading.Event()
        self.errors = 0

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                done = 0
                for queue in self.queues:
                    try:
                        done += work_once(self.broker, queue, self.name, self.ledger, **self.kwargs)
                    except BrokerUnavailable:
                        self.errors += 1
                        time.sleep(0.05)
                if not done:
                    self.stopping.wait(0.02)
        finally:
            connection.close()

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)


class SchedulerThread(threading.Thread):
    """A :class:`scheduler.service.Scheduler` in a thread, with its own database connection."""

    def __init__(self, broker: Broker | None = None, identity: str | None = None) -> None:
        from scheduler.service import Scheduler

        super().__init__(name=identity or "scheduler", daemon=True)
        self.scheduler = Scheduler(broker, identity=identity)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.scheduler.run()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            connection.close()

    def stop(self) -> None:
        self.scheduler.stop()
        self.join(30)
        assert not self.is_alive(), "scheduler thread did not stop"
