"""The keeper thread of a worker process: leases, cancellations, timeouts, the heartbeat, the watchdog.

It never runs jobs and never records them; it watches the jobs the process holds and acts on
them through the :class:`~workers.process.WorkerProcess`. Its Redis connections are its own and
give up after a second, so with Redis unreachable it still enforces timeouts and delivers
cancellations (read from the database) instead of waiting out a long socket timeout.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING

import redis
from django.db import DatabaseError, close_old_connections

from jobs.broker import RestoreItem
from jobs.outages import Outage
from workers import heartbeat, metrics

if TYPE_CHECKING:
    from workers.process import WorkerProcess

logger = logging.getLogger("zipline.worker")

CANCEL_CHECK_INTERVAL = 0.5
KEEPER_TICK = 0.1


class Keeper:
    """One per worker process; :meth:`run` is the body of its thread."""

    def __init__(self, worker: WorkerProcess) -> None:
        self.worker = worker
        self.broker = worker.broker.with_socket_timeout(min(1.0, max(0.2, worker.options.lease_ttl / 6)))
        self.outage = Outage("Redis (lease renewals and heartbeats)", logger)

    def run(self) -> None:
        last_renew = last_cancel_check = last_beat = 0.0
        while True:
            now = time.monotonic()
            # Each duty on its own: one dependency being down must not hold up the others.
            if now - last_cancel_check >= CANCEL_CHECK_INTERVAL:
                last_cancel_check = now
                self._step(self.check_cancellations)
            if now - last_renew >= self.worker.options.lease_ttl / 3 and self._step(self.renew):
                last_renew = now  # a failed renewal is tried again at the next tick
            if now - last_beat >= heartbeat.HEARTBEAT_INTERVAL:
                last_beat = now
                if self._step(lambda: heartbeat.publish(self.broker, self.worker.token, self.worker.facts())):
                    self.outage.recovered()  # the heartbeat always reaches Redis
            self.check_timeouts()
            self.check_parent()
            self.check_wedged()
            time.sleep(KEEPER_TICK)

    def _step(self, duty: Callable[[], None]) -> bool:
        """Run one duty; False if it failed (a Redis outage is logged once)."""
        try:
            duty()
        except redis.RedisError as exc:
            self.outage.failed(exc)
            return False
        except DatabaseError as exc:
            logger.debug("keeper step failed", extra={"error": str(exc)})
            return False
        return True

    def renew(self) -> None:
        """Extend the leases of every job held; a lease that is gone cancels its job's context."""
        worker = self.worker
        with worker.lock:
            by_queue: dict[str, list[str]] = defaultdict(list)
            for job_id, run in worker.inflight.items():
                if not run.released:
                    by_queue[run.job.queue].append(job_id)
        for queue_name, ids in by_queue.items():
            lost_ids = self.broker.renew(queue_name, worker.token, ids, worker.lease_ms)
            if lost_ids and not self.broker.epoch_present():
                # Redis lost its data (restart, FLUSHALL): nobody took these jobs, the leases are
                # simply gone. Take them again (only where no lease exists) instead of cancelling.
                items = [RestoreItem(job_id, "lease", token=worker.token) for job_id in lost_ids]
                self.broker.restore(queue_name, items, worker.lease_ms)
                continue
            for lost in lost_ids:
                with worker.lock:
                    lost_run = worker.inflight.get(lost)
                if lost_run is not None and not lost_run.ctx.cancelled:
                    metrics.LEASES_LOST.inc()
                    logger.warning("lease lost; the job was reclaimed", extra={"job_id": lost, "queue": queue_name})
                    lost_run.ctx.cancel("lease lost")

    def check_cancellations(self) -> None:
        """Tell running jobs whose cancellation was requested (in the database) to stop."""
        from jobs.models import Job

        worker = self.worker
        with worker.lock:
            ids = [run.job.pk for run in worker.inflight.values() if not run.ctx.cancelled]
        if not ids:
            return
        try:
            for job_id in Job.objects.filter(pk__in=ids, cancel_requested=True).values_list("pk", flat=True):
                with worker.lock:
                    run = worker.inflight.get(str(job_id))
                if run is not None:
                    run.ctx.cancel("cancelled")
                    worker.cancel_async(str(job_id))
        finally:
            close_old_connections()

    def check_timeouts(self) -> None:
        """Past its deadline a job is told to stop; past the kill grace its process is replaced."""
        worker = self.worker
        now = time.monotonic()
        with worker.lock:
            runs = [r for r in worker.inflight.values() if not r.released]
        stuck = []
        for run in runs:
            if now > run.ctx.deadline and not run.ctx.cancelled:
                run.ctx.cancel("timeout")
                worker.cancel_async(str(run.job.pk))
            if now > run.ctx.deadline + worker.options.kill_grace:
                stuck.append(run)
        if stuck and not worker.dying:
            worker.replace_for_timeout(stuck)

    def check_parent(self) -> None:
        parent = self.worker.options.parent_pid
        if parent and os.getppid() != parent and not self.worker.stopping.is_set():
            logger.warning("supervisor is gone; draining and exiting", extra={"parent_pid": parent})
            self.worker.request_stop()

    def check_wedged(self) -> None:
        """Rule 6: a fetcher that stopped trying while slots are free is replaced, not left hanging."""
        worker = self.worker
        if worker.stopping.is_set() or worker.dying:
            return
        limit = 10 * worker.options.poll_interval + 30
        if worker.free_slots() > 0 and time.monotonic() - worker.last_claim_attempt > limit:
            worker.exit_wedged(limit)
