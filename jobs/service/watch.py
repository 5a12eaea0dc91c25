"""Waiting for a job to end without polling the database: :func:`wait_for_end` (a thread) and
:class:`Waiter` (a thread or an event loop), for ``GET /api/v1/jobs/{id}?wait=30s`` and any other caller
that must hear of a job's end at once (gRPC's WatchJob).

Whatever ends a job publishes its id on Redis after the commit (:mod:`jobs.endings`). Each process has
ONE listener thread subscribed to that channel (:class:`EndWatch`), which wakes the waiters registered
for the ids it hears. A waiter registers BEFORE it reads the row, so an ending committed after that read
is heard, and one committed before it is read: no wake-up is missed. When the listener (re)subscribes
(at start, after Redis was out of reach) it wakes every waiter, which reads its row again: endings
published while nobody listened are not lost either. Waiting costs no thread and no query: one read
before the wait, one when woken or at the deadline.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time

from jobs.broker import BrokerUnavailable, get_broker
from jobs.lifecycle import FINISHED
from jobs.models import Job
from jobs.service.actions import get_job, job_id_of

logger = logging.getLogger("zipline.watch")

#: How long a caller of ``EndWatch.start`` may wait for a new listener's subscription (a waiter that
#: registers before it holds is woken for a re-check when it does), and for Redis to confirm one.
SUBSCRIBE_WAIT = 2.0
#: How long the listener blocks for a message before it looks whether it should stop.
LISTEN_TICK = 1.0
#: The pause before the listener subscribes again after Redis failed it.
RETRY_PAUSE = 1.0


def has_ended(job: Job) -> bool:
    """The job is in a final state (completed, failed, cancelled, expired)."""
    return job.status in FINISHED


class Waiter:
    """One caller's wait on one job: woken by the listener thread, waited on by a thread or a loop."""

    def __init__(self, job_id: str, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.job_id = job_id
        self._event = threading.Event()
        self._loop = loop
        self._async_event = asyncio.Event() if loop is not None else None

    def wake(self) -> None:
        """Called by the listener thread."""
        self._event.set()
        if self._loop is not None and self._async_event is not None:
            try:
                self._loop.call_soon_threadsafe(self._async_event.set)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

    def wait(self, timeout: float) -> bool:
        """Block this thread until woken or ``timeout`` passes; True when woken."""
        woken = self._event.wait(max(0.0, timeout))
        self._event.clear()
        return woken

    async def wait_async(self, timeout: float) -> bool:
        """Await a wake-up (in the loop given at registration) or ``timeout``; True when woken."""
        assert self._async_event is not None, "registered without a loop"
        try:
            async with asyncio.timeout(max(0.0, timeout)):
                await self._async_event.wait()
        except TimeoutError:
            return False
        finally:
            self._async_event.clear()
        return True


class EndWatch:
    """The process's one subscription to job endings and the waiters it wakes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[Waiter]] = {}
        self._thread: threading.Thread | None = None
        self._subscribed = threading.Event()
        self._stop = threading.Event()

    def listening(self) -> bool:
        return self._subscribed.is_set()

    def start(self, timeout: float = SUBSCRIBE_WAIT) -> bool:
        """Start the listener thread if it is not running; a new one is waited for (at most ``timeout``)
        until it subscribes. True once the subscription holds. Waiting is never needed for correctness
        (a waiter registered before the subscription is woken when it holds), only to spare a re-check."""
        with self._lock:
            fresh = self._thread is None or not self._thread.is_alive()
            if fresh:
                self._thread = threading.Thread(target=self._run, name="zipline-end-watch", daemon=True)
                self._thread.start()
        return self._subscribed.wait(timeout if fresh else 0)

    def register(self, job_id: str, loop: asyncio.AbstractEventLoop | None = None) -> Waiter:
        """A waiter on ``job_id`` (its canonical text), woken by the next ending of that id."""
        waiter = Waiter(job_id, loop)
        with self._lock:
            self._waiters.setdefault(job_id, set()).add(waiter)
        return waiter

    def unregister(self, waiter: Waiter) -> None:
        with self._lock:
            same = self._waiters.get(waiter.job_id)
            if same is not None:
                same.discard(waiter)
                if not same:
                    del self._waiters[waiter.job_id]

    def count(self) -> int:
        with self._lock:
            return sum(len(same) for same in self._waiters.values())

    def wake(self, job_ids: list[str] | None) -> None:
        """Wake the waiters of ``job_ids`` (None: every waiter)."""
        with self._lock:
            if job_ids is None:
                woken = [w for same in self._waiters.values() for w in same]
            else:
                woken = [w for one in job_ids for w in self._waiters.get(one, ())]
        for waiter in woken:
            waiter.wake()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        broker = get_broker()
        while not self._stop.is_set():
            listener = broker.listen_ended()
            try:
                listener.subscribe(SUBSCRIBE_WAIT)
                self._subscribed.set()
                self.wake(None)  # endings published while nobody listened were not heard: look again
                while not self._stop.is_set():
                    if ids := listener.next(LISTEN_TICK):
                        self.wake(ids)
            except BrokerUnavailable as exc:
                if self._subscribed.is_set():
                    logger.warning("stopped hearing of job endings; subscribing again", extra={"error": str(exc)})
                self._subscribed.clear()
                self._stop.wait(RETRY_PAUSE)
            finally:
                try:
                    listener.close()
                except BrokerUnavailable:
                    pass


_watch: dict[str, EndWatch] = {}


def end_watch() -> EndWatch:
    """This process's watch (a new one after a fork: threads do not survive it)."""
    watch = _watch.get("watch")
    if watch is None:
        watch = _watch.setdefault("watch", EndWatch())
    return watch


def reset_end_watch() -> None:
    """Stop this process's listener and forget it (tests that change the Redis prefix call this)."""
    watch = _watch.pop("watch", None)
    if watch is not None:
        watch.stop()


os.register_at_fork(after_in_child=_watch.clear)


def wait_for_end(job_id: object, timeout: float) -> Job:
    """The job once it ends, or as it is after ``timeout`` seconds; blocks the calling thread.

    Raises :class:`~jobs.service.errors.JobNotFound` for an id that names no job (also one deleted
    while waited on)."""
    key = str(job_id_of(job_id))
    deadline = time.monotonic() + timeout
    watch = end_watch()
    watch.start()
    waiter = watch.register(key)
    try:
        while True:
            job = get_job(key)
            remaining = deadline - time.monotonic()
            if has_ended(job) or remaining <= 0:
                return job
            waiter.wait(remaining)
    finally:
        watch.unregister(waiter)
