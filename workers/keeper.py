"""The keeper thread of a worker process: leases, cancellations, timeouts, the heartbeat, the watchdog.

It never runs jobs and never records them; it watches the jobs the process holds (its
:class:`~workers.state.WorkerState`) and, when one ignores its hard timeout or the fetcher wedges,
has the process replaced (:mod:`workers.exits`). Its Redis connections are its own and
give up after a second, so with Redis unreachable it still enforces timeouts and delivers
cancellations (read from the database) instead of waiting out a long socket timeout.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable

from django.db import DatabaseError, close_old_connections

from jobs import limits
from jobs.broker import Broker, BrokerUnavailable, RestoreItem, heartbeat
from workers import exits, metrics
from workers.executor import Executor
from workers.recorder import Recorder
from workers.state import WorkerState

logger = logging.getLogger("zipline.worker")

CANCEL_CHECK_INTERVAL = 0.5
KEEPER_TICK = 0.1


class Keeper:
    """One per worker process; :meth:`run` is the body of its thread."""

    def __init__(self, state: WorkerState, broker: Broker, executor: Executor, recorder: Recorder) -> None:
        self.state = state
        self.options = state.options
        self.broker = broker.with_socket_timeout(min(1.0, max(0.2, self.options.lease_ttl / 6)))
        self.executor = executor
        self.recorder = recorder

    def run(self) -> None:
        last_renew = last_cancel_check = last_beat = 0.0
        while True:
            now = time.monotonic()
            # Each duty on its own: one dependency being down must not hold up the others.
            if now - last_cancel_check >= CANCEL_CHECK_INTERVAL:
                last_cancel_check = now
                self._step(self.check_cancellations)
            if now - last_renew >= self.options.lease_ttl / 3 and self._step(self.renew):
                last_renew = now  # a failed renewal is tried again at the next tick
            if now - last_beat >= heartbeat.HEARTBEAT_INTERVAL:
                last_beat = now
                if self._step(lambda: heartbeat.publish(self.broker, self.state.worker_id, self.state.facts())):
                    self.state.keeper_redis_outage.recovered()  # the heartbeat always reaches Redis
            self.check_timeouts()
            self.check_parent()
            self.check_wedged()
            time.sleep(KEEPER_TICK)

    def _step(self, duty: Callable[[], None]) -> bool:
        """Run one duty; False if it failed (a Redis outage is logged once)."""
        try:
            duty()
        except BrokerUnavailable as exc:
            self.state.keeper_redis_outage.failed(exc)
            return False
        except DatabaseError as exc:
            logger.debug("keeper step failed", extra={"error": str(exc)})
            return False
        return True

    def renew(self) -> None:
        """Extend the leases of every job held; a lease that is gone cancels its job's context."""
        state = self.state
        by_queue: dict[str, list[str]] = defaultdict(list)
        for run in state.unreleased():
            by_queue[run.job.queue].append(run.ctx.job_id)
        for queue_name, ids in by_queue.items():
            lost_ids = self.broker.renew(queue_name, state.worker_id, ids, state.lease_ms)
            if lost_ids and not self.broker.epoch_present():
                # Redis lost its data (restart, FLUSHALL): nobody took these jobs, the leases are
                # simply gone. Take them again (only where no lease exists) instead of cancelling.
                self._take_leases_again(queue_name, lost_ids)
                continue
            for lost in lost_ids:
                lost_run = state.find(lost)
                if lost_run is not None and not lost_run.ctx.cancelled:
                    metrics.LEASES_LOST.inc()
                    logger.warning("lease lost; the job was reclaimed", extra={"job_id": lost, "queue": queue_name})
                    lost_run.ctx.cancel("lease lost")

    def _take_leases_again(self, queue: str, job_ids: list[str]) -> None:
        """Leases Redis lost with its data: taken again, holding their jobs' concurrency slots."""
        state = self.state
        items = []
        for job_id in job_ids:
            run = state.find(job_id)
            lane = limits.lane(run.job.type, run.job.group) if run is not None else ""
            items.append(RestoreItem(job_id, "lease", worker_id=state.worker_id, lane=lane))
        self.broker.restore(queue, items, state.lease_ms, limited=_has_limits(queue))

    def check_cancellations(self) -> None:
        """Tell running jobs whose cancellation was requested (in the database) to stop."""
        from jobs.models import Job

        ids = [run.job.pk for run in self.state.held() if not run.ctx.cancelled]
        if not ids:
            return
        try:
            for job_id in Job.objects.filter(pk__in=ids, cancel_requested=True).values_list("pk", flat=True):
                run = self.state.find(str(job_id))
                if run is not None:
                    run.ctx.cancel("cancelled")
                    self.executor.cancel_async(str(job_id))
        finally:
            close_old_connections()

    def check_timeouts(self) -> None:
        """Past its deadline a job is told to stop; past the kill grace its process is replaced."""
        now = time.monotonic()
        stuck = []
        for run in self.state.unreleased():
            if now > run.ctx.deadline and not run.ctx.cancelled:
                run.ctx.cancel("timeout")
                self.executor.cancel_async(run.ctx.job_id)
            if now > run.ctx.deadline + self.options.kill_grace:
                stuck.append(run)
        if stuck and not self.state.dying:
            exits.replace_for_timeout(self.state, self.recorder, self.broker, stuck)

    def check_parent(self) -> None:
        parent = self.options.parent_pid
        if parent and os.getppid() != parent and not self.state.stopping.is_set():
            logger.warning("supervisor is gone; draining and exiting", extra={"parent_pid": parent})
            self.state.request_stop()

    def check_wedged(self) -> None:
        """Rule 6: a fetcher that stopped trying while slots are free is replaced, not left hanging."""
        state = self.state
        if state.going:
            return
        limit = 10 * self.options.poll_interval + 30
        if state.free_slots() > 0 and state.seconds_since_claim_attempt() > limit:
            exits.exit_wedged(self.recorder, limit)


def _has_limits(queue: str) -> bool:
    """Whether ``queue`` has limits (its restored leases then hold their slots, on the flow path); a
    queue with none stays on the plain path. A database out of reach: assume limits, the safe side."""
    from jobs import queue_limits

    try:
        return queue_limits.load([queue])[queue].is_set
    except DatabaseError:
        return True
