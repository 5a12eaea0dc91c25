"""The executor of a worker process: runs claimed jobs on job threads (``async def`` processors on
one event loop thread) and passes each ending to the recorder.

A job thread is started only when no idle one is waiting, up to the slot count, so a process that
runs few jobs at once keeps few threads.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future

from django.db import close_old_connections, connections

from jobs.models import Job
from workers import metrics
from workers.execution import Ending, Running, conclude, prepare, run_async, run_sync, wants_event_loop
from workers.recorder import Recorder
from workers.state import WorkerState

JOB_BEGAN_WAIT = 0.002


class Executor:
    """One per worker process; the fetcher calls :meth:`start`, the keeper :meth:`cancel_async`."""

    def __init__(self, state: WorkerState, recorder: Recorder) -> None:
        self.state = state
        self.recorder = recorder
        self.lock = threading.Lock()  # guards job_threads and idle_threads
        self.job_threads: list[threading.Thread] = []
        self.idle_threads = 0
        self.work: queue.SimpleQueue[Running | None] = queue.SimpleQueue()
        self.job_began = threading.Event()  # a job thread took a job (see start)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.async_tasks: dict[str, Future[Ending]] = {}

    def start(self, jobs: Sequence[Job]) -> None:
        """Run jobs that were claimed and marked running, each in a slot of its own."""
        started: Counter[tuple[str, str]] = Counter()
        self.job_began.clear()
        on_threads = False
        for job in jobs:
            running = prepare(job, self.state.worker_id, self.state.options.job_timeout)
            self.state.take_slot(running)
            started[(job.queue, job.type)] += 1
            if wants_event_loop(running):
                self._submit_async(running)
            else:
                self._submit_sync(running)
                on_threads = True
        if on_threads:
            # Let go of the GIL until a job thread just woken has started its job: otherwise it
            # waits for this thread's next network call, which is 0.1 to 0.2 ms off on an idle machine.
            self.job_began.wait(JOB_BEGAN_WAIT)
        for labels, count in started.items():
            metrics.for_job(*labels).active.inc(count)

    def cancel_async(self, job_id: str) -> None:
        """Cancel an ``async`` job's coroutine (a thread's job sees only its context)."""
        future = self.async_tasks.get(job_id)
        if future is not None:
            future.cancel()

    def _submit_sync(self, running: Running) -> None:
        """Queue a job for the job threads, starting a thread when none is idle (up to the slot count)."""
        with self.lock:
            spawn = self.idle_threads == 0 and len(self.job_threads) < self.state.options.slots
            if spawn:
                # The new thread is for this job; it counts itself idle once the job ends.
                thread = threading.Thread(target=self._job_thread, name=f"job-{len(self.job_threads)}", daemon=True)
                self.job_threads.append(thread)
            else:
                self.idle_threads = max(0, self.idle_threads - 1)
        if spawn:
            thread.start()
        self.work.put(running)

    def _job_thread(self) -> None:
        while True:
            running = self.work.get()
            if running is None:
                return
            self.job_began.set()
            ending = run_sync(running)
            if connections.all(initialized_only=True):
                close_old_connections()  # only if the job used the database on this thread
            self._ended(ending)
            with self.lock:
                self.idle_threads += 1

    def _submit_async(self, running: Running) -> None:
        if self.loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="event-loop", daemon=True).start()
            self.loop = loop
        future = asyncio.run_coroutine_threadsafe(run_async(running), self.loop)
        self.async_tasks[running.ctx.job_id] = future
        future.add_done_callback(lambda f: self._async_done(running, f))

    def _async_done(self, running: Running, future: Future[Ending]) -> None:
        self.async_tasks.pop(running.ctx.job_id, None)
        try:
            ending = future.result()
        except BaseException as exc:  # noqa: BLE001 - cancelled from outside
            ending = conclude(running, error=exc)
        self._ended(ending)

    def _ended(self, ending: Ending) -> None:
        self.state.free_slot()
        self.recorder.submit(ending)
        self.state.wake_fetcher()
