"""What one worker process holds, shared by its threads: jobs in flight, slots, stop signals,
counters and outages.

The fetcher, the executor, the keeper and the recorder each get this one object and change it
through its methods, so that each transition (a slot taken or freed, a job forgotten, the process
told to stop or going away) is written once. :attr:`WorkerState.lock` guards ``inflight``,
``executing`` and ``jobs_started``; ``processed`` and ``failed`` are written by the recorder alone.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError, connections

from jobs.broker import BrokerUnavailable
from jobs.ids import id_text
from jobs.outages import Outage
from jobs.tally import Tally
from workers.execution import Running
from workers.selection import QueueSelector

logger = logging.getLogger("zipline.worker")


@dataclass
class WorkerOptions:
    """What one worker process needs to know; durations in seconds."""

    worker_id: str
    selector: QueueSelector
    slots: int
    poll_interval: float = 1.0
    job_timeout: float = 300.0
    shutdown_timeout: float = 30.0
    lease_ttl: float = 30.0
    kill_grace: float = 5.0
    max_jobs: int = 0
    max_result_bytes: int = 1024 * 1024
    parent_pid: int | None = None
    hostname: str = field(default_factory=socket.gethostname)
    metrics_group_labels: bool = False  # JQS_METRICS_GROUP_LABELS: group names as labels of flow metrics


@dataclass(eq=False)
class WorkerState:
    """The one mutable object of a worker process; see the module docstring for who writes what."""

    options: WorkerOptions
    inflight: dict[str, Running] = field(default_factory=dict)  # held jobs, from claim to recorded or handed back
    executing: int = 0  # jobs whose processor is running: what the slots limit
    jobs_started: int = 0  # for the max_jobs budget
    processed: int = 0
    failed: int = 0
    dying: bool = False  # recorded what it could and handed back the rest: writes nothing more
    started_at: float = field(default_factory=time.time)
    last_claim_attempt: float = field(default_factory=time.monotonic)  # for the liveness watchdog
    lock: threading.Lock = field(default_factory=threading.Lock)
    slot_freed: threading.Event = field(default_factory=threading.Event)  # wakes the fetcher
    stopping: threading.Event = field(default_factory=threading.Event)  # claim nothing more, drain
    urgent: threading.Event = field(default_factory=threading.Event)  # hand back now, without the grace
    redis_outage: Outage = field(default_factory=lambda: Outage("Redis", logger))
    db_outage: Outage = field(default_factory=lambda: Outage("database", logger))
    # The keeper's own connections: renewals and heartbeats may fail while claims still go through.
    keeper_redis_outage: Outage = field(default_factory=lambda: Outage("Redis (lease renewals and heartbeats)", logger))

    @property
    def worker_id(self) -> str:
        return self.options.worker_id

    @property
    def lease_ms(self) -> int:
        return int(self.options.lease_ttl * 1000)

    # -- slots and jobs in flight ------------------------------------------------------------------

    def free_slots(self) -> int:
        """Slots not taken by a job that is executing (one that ended but is not yet recorded
        frees its slot at once, so claiming the next jobs overlaps with recording the last),
        and never more than the jobs left of a ``max_jobs`` budget."""
        with self.lock:
            free = self.options.slots - self.executing
            if self.options.max_jobs:
                free = min(free, self.options.max_jobs - self.jobs_started)
        return free

    def take_slot(self, running: Running) -> None:
        """A claimed job starts: it is held, takes a slot, and spends one of a ``max_jobs`` budget."""
        with self.lock:
            self.inflight[running.ctx.job_id] = running
            self.executing += 1
            self.jobs_started += 1

    def free_slot(self) -> None:
        """A job's processor returned: its slot is free, though the job is held until it is recorded.
        The caller wakes the fetcher (:meth:`wake_fetcher`) once the ending is passed on."""
        with self.lock:
            self.executing -= 1

    def wake_fetcher(self) -> None:
        self.slot_freed.set()

    def forget(self, runs: Sequence[Running]) -> None:
        """Jobs recorded or handed back: no longer held. Once a ``max_jobs`` budget is spent, the
        process stops with its last job recorded, so a recycle never hands back a running job."""
        with self.lock:
            for run in runs:
                self.inflight.pop(id_text(run.job), None)
            recycle = bool(self.options.max_jobs) and self.jobs_started >= self.options.max_jobs and not self.inflight
        self.slot_freed.set()
        if recycle and not self.stopping.is_set():
            logger.info("recycling after max_jobs", extra={"processed": self.processed})
            self.request_stop()

    def held(self) -> list[Running]:
        """Every job held, handed back or not."""
        with self.lock:
            return list(self.inflight.values())

    def unreleased(self) -> list[Running]:
        """The jobs held that were not handed back: those whose leases and deadlines still matter."""
        with self.lock:
            return [run for run in self.inflight.values() if not run.released]

    def find(self, job_id: str) -> Running | None:
        with self.lock:
            return self.inflight.get(job_id)

    def release_unended(self, recorded_here: set[int]) -> list[Running]:
        """Going away: mark every held job that has not ended (and is not in ``recorded_here``, by
        ``id()``) as handed back, and return them. The caller holds the recorder's lock on endings."""
        with self.lock:
            left = [
                run
                for run in self.inflight.values()
                if not run.released and not run.ended and id(run) not in recorded_here
            ]
            for run in left:
                run.released = True
        return left

    def busy(self) -> int:
        with self.lock:
            return len(self.inflight)

    def executing_now(self) -> int:
        with self.lock:
            return self.executing

    def count(self, counted: Tally) -> None:
        """Attempts recorded, for the heartbeat's ``processed`` and ``failed`` (the recorder's thread only)."""
        self.processed += counted.total
        self.failed += counted.failed

    # -- stopping ----------------------------------------------------------------------------------

    def request_stop(self, urgent: bool = False) -> None:
        """Claim nothing more and drain; ``urgent`` hands running jobs back without the grace."""
        self.stopping.set()
        if urgent:
            self.urgent.set()
        self.slot_freed.set()

    def stop_signalled(self) -> None:
        """A stop signal: the first one drains, a second one hands back at once."""
        self.request_stop(urgent=self.stopping.is_set())

    def mark_dying(self) -> None:
        """Everything is recorded or handed back for good: the recorder writes nothing more."""
        self.dying = True

    @property
    def going(self) -> bool:
        """Stopping or dying: a job claimed now goes straight back."""
        return self.dying or self.stopping.is_set()

    def wait_while(self, condition: Callable[[], object], seconds: float, check_every: float) -> None:
        """Wait while ``condition`` holds, for at most ``seconds``, waking as slots are freed."""
        deadline = time.monotonic() + seconds
        while condition() and time.monotonic() < deadline:
            self.slot_freed.wait(check_every)
            self.slot_freed.clear()

    # -- the watchdog ------------------------------------------------------------------------------

    def note_claim_attempt(self) -> None:
        self.last_claim_attempt = time.monotonic()

    def seconds_since_claim_attempt(self) -> float:
        return time.monotonic() - self.last_claim_attempt

    # -- outages -----------------------------------------------------------------------------------

    def redis_failed(self, exc: Exception, sleep: bool = True) -> None:
        """Note a Redis error (logged once per outage); ``sleep`` backs off, cut short by a stop."""
        down_for = self.redis_outage.failed(exc)
        self.note_claim_attempt()
        if sleep:
            self.stopping.wait(min(0.1 * (2 ** min(down_for, 4)), 1.0))

    def redis_recovered(self) -> None:
        self.redis_outage.recovered()

    def db_failed(self, exc: Exception, sleep: bool = True) -> None:
        """Note a database error (logged once per outage) and drop broken connections."""
        self.db_outage.failed(exc)
        self.note_claim_attempt()
        for conn in connections.all():
            conn.close_if_unusable_or_obsolete()
        if sleep:
            self.stopping.wait(1.0)

    def db_recovered(self) -> None:
        self.db_outage.recovered()

    def facts(self) -> dict[str, Any]:
        """What the heartbeat publishes and the start and stop lines log."""
        selector = self.options.selector
        return {
            "worker_id": self.worker_id,
            "hostname": self.options.hostname,
            "pid": os.getpid(),
            "queues": "*" if selector.every_queue else ",".join(selector.names),
            "concurrency": self.options.slots,
            "busy": self.busy(),
            "processed": self.processed,
            "failed": self.failed,
            "started_at": f"{self.started_at:.3f}",
        }


def best_effort(action: Callable[[], Any]) -> None:
    """Run a cleanup step that may fail with Redis or the database away: log it and go on."""
    try:
        action()
    except (BrokerUnavailable, DatabaseError) as exc:
        logger.warning("cleanup step failed", extra={"error": str(exc)})
