"""The scheduler's loop: each duty on its own interval, sleeping until the next thing is due.

Duties, in the order a step runs them:

======== ============================================ =============================================
duty     what                                         when
======== ============================================ =============================================
epoch    rebuild Redis from the database if it lost   every 0.2 s (one EXISTS)
         its data (:mod:`scheduler.reconcile`)
promote  due delayed/retrying jobs -> ready           at the next due time, and at least every 0.5 s
         (:mod:`scheduler.promote`)                   (a new delayed job may be due sooner)
cron     recurring jobs (:mod:`scheduler.cron`)       at the next fire time, at least every 0.5 s
expire   waiting jobs past their ``expires_at`` ->     every second (at once again after a full
         expired, out of Redis; lapsed unique claims  batch)
         (:mod:`jobs.expiry`)
reclaim  expired leases (:mod:`scheduler.reclaim`)    every ``scheduler_reclaim_interval``
reconcile dual-write window, orphans, paused flags    every ``scheduler_poll_interval``, by one
                                                      scheduler per interval
retention old finished jobs (:mod:`scheduler.retention`) every minute, by one scheduler per interval
======== ============================================ =============================================

A delayed job therefore becomes ready within about half a second of its due time whatever the poll
interval. Any number of schedulers may run: every duty is safe to run concurrently (see
:mod:`jobs.broker.locks`), and the interval gates only spare duplicate scans, so when one scheduler
dies the others carry on within one interval. A failing duty is retried with a backoff of up to 5 s; the
others go on. Redis or the database out of reach is an outage, logged once per dependency whichever
duties it stops (a warning without a traceback when the first duty fails for want of it, ``... is back``
when the last of them gets through); any other error is a bug: ``scheduler duty failed`` at ERROR, with a
traceback on the first failure of a run of them. :meth:`Scheduler.stop` (SIGTERM/SIGINT in the command)
wakes the loop at once; the current step finishes first.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connection

from jobs import expiry
from jobs.broker import Broker, BrokerUnavailable, get_broker
from jobs.broker.locks import once_per_interval
from jobs.outages import Outage
from scheduler import cron, promote, reclaim, reconcile, retention
from zipline_site.config import Config

logger = logging.getLogger("zipline.scheduler")

PROMOTE_CHECK = 0.5
# A job past its expires_at may sit unclaimed (a paused queue) at most this long before it is marked expired.
EXPIRE_CHECK = 1.0
# After a Redis loss every lease looks lost to a worker that renews before the rebuild: keep that short.
EPOCH_CHECK = 0.2
RETENTION_INTERVAL = 60.0
MAX_BACKOFF = 5.0
MIN_SLEEP = 0.002
# A gate shorter than its interval, so the scheduler that ran a duty may run it again on time.
GATE_FRACTION = 0.8
REDIS = "Redis"
DATABASE = "database"


def default_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def unavailable(exc: Exception) -> str | None:
    """The dependency ``exc`` says is out of reach (:data:`REDIS`, :data:`DATABASE`), or None for a bug."""
    if isinstance(exc, BrokerUnavailable):
        return REDIS
    if isinstance(exc, OperationalError | InterfaceError):
        return DATABASE
    return None


@dataclass
class Duty:
    name: str
    run: Callable[[], float]  # does the work; returns seconds until it wants to run again
    next_at: float = 0.0
    failures: int = 0  # in a row, whatever the cause: sets the backoff
    waiting_for: str | None = None  # the dependency its last run failed for want of
    error_logged: bool = False  # a bug was logged (at ERROR) since its last success


class Scheduler:
    """One scheduler instance. Thread-safe to stop; ``step()`` is the unit tests drive directly."""

    def __init__(
        self,
        broker: Broker | None = None,
        *,
        identity: str | None = None,
        on_loop: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        config: Config | None = None,
    ) -> None:
        self.broker = broker or get_broker()
        self.config = config or settings.ZIPLINE  # its scheduler and worker sections, read once
        self.identity = identity or default_identity()
        self.on_loop = on_loop
        self.clock = clock
        self.stopping = threading.Event()
        self.duties = [
            Duty("epoch", self.check_epoch),
            Duty("promote", self.promote),
            Duty("cron", self.fire_cron),
            Duty("expire", self.expire),
            Duty("reclaim", self.reclaim),
            Duty("reconcile", self.reconcile),
            Duty("retention", self.retention),
        ]
        self.outages = {name: Outage(name, logger, logging.WARNING, clock) for name in (REDIS, DATABASE)}

    # -- duties: each returns the seconds until it is due again -------------------------------------

    def check_epoch(self) -> float:
        reconcile.ensure_epoch(
            self.broker,
            owner=self.identity,
            lease_ttl=self.config.worker.lease_ttl,
            batch=self.config.scheduler.batch_size,
            should_stop=self.stopping.is_set,
        )
        return EPOCH_CHECK

    def promote(self) -> float:
        report = promote.promote(self.broker, self.config.scheduler.batch_size)
        if report.more:
            return 0.0
        return PROMOTE_CHECK if report.next_due is None else min(report.next_due, PROMOTE_CHECK)

    def fire_cron(self) -> float:
        batch = self.config.scheduler.batch_size
        report = cron.fire_due(limit=batch)
        if len(report.fired) >= batch:
            return 0.0
        return PROMOTE_CHECK if report.next_in is None else min(report.next_in, PROMOTE_CHECK)

    def expire(self) -> float:
        report = expiry.sweep(self.broker, self.config.scheduler.batch_size)
        return 0.0 if report.more else EXPIRE_CHECK

    def reclaim(self) -> float:
        report = reclaim.reclaim(self.broker, self.config.scheduler.batch_size)
        return 0.0 if report.more else float(self.config.scheduler.reclaim_interval)

    def reconcile(self) -> float:
        interval = float(self.config.scheduler.poll_interval)
        if self._gate("reconcile", interval):
            reconcile.reconcile(
                self.broker,
                grace=self.config.scheduler.reconcile_grace,
                lease_ttl=self.config.worker.lease_ttl,
                batch=self.config.scheduler.batch_size,
            )
        return interval

    def retention(self) -> float:
        try:
            gated = self._gate("retention", RETENTION_INTERVAL)
        except BrokerUnavailable:
            gated = True  # retention needs only the database, and is safe to run twice
        if not gated:
            return RETENTION_INTERVAL
        report = retention.purge(
            completed_age=self.config.scheduler.retention_completed,
            failed_age=self.config.scheduler.retention_failed,
            batch=self.config.scheduler.batch_size,
        )
        return 1.0 if report.more else RETENTION_INTERVAL

    def _gate(self, name: str, interval: float) -> bool:
        return once_per_interval(self.broker, f"gate:{name}", self.identity, interval * GATE_FRACTION)

    # -- the loop ------------------------------------------------------------------------------------

    def step(self) -> float:
        """Run every duty that is due; return the seconds to sleep before the next step."""
        if not connection.in_atomic_block:
            close_old_connections()
        for duty in self.duties:
            if self.stopping.is_set():
                break
            if self.clock() < duty.next_at:
                continue
            try:
                delay = duty.run()
                if duty.error_logged:
                    logger.info("scheduler duty recovered", extra={"duty": duty.name, "failures": duty.failures})
                duty.failures = 0
                duty.error_logged = False
                self._waiting(duty, None)
            except Exception as exc:  # noqa: BLE001 - one failing duty must not stop the others
                duty.failures += 1
                delay = min(MAX_BACKOFF, 0.25 * 2**duty.failures)
                dependency = unavailable(exc)
                self._waiting(duty, dependency, exc)
                if dependency is None:
                    logger.error(
                        "scheduler duty failed",
                        extra={
                            "duty": duty.name,
                            "failures": duty.failures,
                            "retry_in": delay,
                            "error": f"{type(exc).__name__}: {exc}",
                        },
                        exc_info=not duty.error_logged,
                    )
                    duty.error_logged = True
                if not connection.in_atomic_block:
                    close_old_connections()
            duty.next_at = self.clock() + max(0.0, delay)
        now = self.clock()
        return max(MIN_SLEEP, min(d.next_at for d in self.duties) - now)

    def _waiting(self, duty: Duty, dependency: str | None, exc: Exception | None = None) -> None:
        """Note what ``duty`` last failed for want of (None: it got through); log an outage's edges.

        An outage of a dependency starts when the first duty fails for want of it and ends when every
        duty that did has got through (or now fails for another reason), so it is logged once however
        many duties it stops, and ends only once they work again.
        """
        was, duty.waiting_for = duty.waiting_for, dependency
        if dependency is not None and exc is not None:
            self.outages[dependency].failed(exc, duty=duty.name)
        if was is not None and was != dependency and all(d.waiting_for != was for d in self.duties):
            self.outages[was].recovered()

    def run(self) -> None:
        """Step until :meth:`stop`; returns after the current step."""
        config = self.config
        logger.info(
            "scheduler started",
            extra={
                "scheduler": self.identity,
                "poll_interval": config.scheduler.poll_interval,
                "reclaim_interval": config.scheduler.reclaim_interval,
                "batch_size": config.scheduler.batch_size,
                "reconcile_grace": config.scheduler.reconcile_grace,
            },
        )
        try:
            while not self.stopping.is_set():
                wait = self.step()
                if self.on_loop is not None:
                    self.on_loop()
                self.stopping.wait(wait)
        finally:
            logger.info("scheduler stopped", extra={"scheduler": self.identity})

    def stop(self) -> None:
        self.stopping.set()
