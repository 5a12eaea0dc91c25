"""One worker process: claims jobs from Redis, runs them on threads (or its event loop), records them.

Threads, each with one job:

- the main thread *fetches*: it claims as many jobs as there are free slots, in one Lua call per
  queue, marks them running in one UPDATE, and hands them to the pool; when the queues are empty it
  blocks on Redis (BLPOP) until an enqueue wakes it, so a job starts within milliseconds;
- pool threads (and one event loop thread for ``async`` processors) *run* jobs;
- the *finisher* (:mod:`workers.recorder`) records outcomes in batches (one UPDATE and one
  INSERT for many jobs, then one Redis call per queue), retrying while the database is out of reach;
- the *keeper* (:mod:`workers.keeper`) renews leases, notices cancellations and timeouts,
  publishes the heartbeat, and has this process replaced (exit) when a job ignores its hard timeout.

Shutdown: the first SIGTERM stops claiming and lets running jobs finish for the shutdown timeout,
then hands the rest back uncharged; a second SIGTERM hands them back at once. Losing a job is
worse than running it twice, so anything not recorded is released before the process exits.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import queue as queue_module
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from django.db import DatabaseError, close_old_connections, connections

from jobs import recovery, states
from jobs.broker import Broker, Settlement
from jobs.models import Outcome
from jobs.outages import Outage
from jobs.redis_client import get_broker
from workers import heartbeat, metrics
from workers.execution import Ending, Running, conclude, prepare, run_async, run_sync, wants_event_loop
from workers.keeper import Keeper
from workers.queues import QueueSelector
from workers.recorder import Recorder

logger = logging.getLogger("zipline.worker")

EXIT_OK = 0
EXIT_HARD_TIMEOUT = 3
EXIT_WEDGED = 4
EXIT_THREAD_CRASHED = 5
CLAIM_BATCH = 64
GATHER_WAIT = 0.003
JOB_BEGAN_WAIT = 0.002
QUEUE_LIST_TTL = 2.0
HAND_BACK_WAIT = 0.25  # after telling running jobs to stop for a shutdown, before handing them back


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


def _set_parent_death_signal() -> None:
    """Ask Linux to send SIGTERM when the supervisor dies, so orphans drain and exit (F03)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the keeper's ppid check covers it


class WorkerProcess:
    """Runs jobs until told to stop; see the module docstring for its threads."""

    def __init__(self, options: WorkerOptions, broker: Broker | None = None) -> None:
        self.options = options
        self.broker = broker or get_broker()
        self.token = options.worker_id
        self.lease_ms = int(options.lease_ttl * 1000)
        self.inflight: dict[str, Running] = {}
        self.lock = threading.Lock()
        self.slot_freed = threading.Event()
        self.job_began = threading.Event()  # a pool thread took a job (see _start)
        self.stopping = threading.Event()
        self.urgent = threading.Event()
        self.dying = False
        self.pool_threads: list[threading.Thread] = []
        self.every_queue: list[str] = []
        self.queues_seen_at = -QUEUE_LIST_TTL
        self.executing = 0  # jobs whose processor is running: what the slots limit
        self.idle_threads = 0
        self.work: queue_module.SimpleQueue[Running | None] = queue_module.SimpleQueue()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.async_tasks: dict[str, asyncio.Future[Ending]] = {}
        self.processed = 0
        self.jobs_started = 0  # jobs handed to the pool, for the max_jobs budget
        self.failed = 0
        self.started_at = time.time()
        self.last_claim_attempt = time.monotonic()
        # Ids whose claim failed in the database: it may have committed anyway (see _start).
        self.claims_in_doubt: list[str] = []
        self.redis_outage = Outage("Redis", logger)
        self.db_outage = Outage("database", logger)
        self.recorder = Recorder(self)
        # With a deep queue, claim when this many slots are free (bounded by GATHER_WAIT).
        self.gather_target = max(1, min(CLAIM_BATCH, options.slots // 2))

    # -- life cycle --------------------------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped; returns the process exit code."""
        if self.options.parent_pid:
            _set_parent_death_signal()
        signal.signal(signal.SIGTERM, self._on_signal)
        # The supervisor turns Ctrl-C and a hang-up (sent to the whole group) into SIGTERM.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        threading.excepthook = self._thread_crashed
        threading.Thread(target=self.recorder.run, name="finisher", daemon=True).start()
        threading.Thread(target=Keeper(self).run, name="keeper", daemon=True).start()
        logger.info("worker started", extra=self.facts())
        try:
            self._fetch_loop()
        finally:
            code = self._drain()
        return code

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.stopping.is_set():
            self.urgent.set()
        self.stopping.set()
        self.slot_freed.set()

    def request_stop(self, urgent: bool = False) -> None:
        self.stopping.set()
        if urgent:
            self.urgent.set()
        self.slot_freed.set()

    def _drain(self) -> int:
        """Let running jobs finish within the shutdown timeout, then hand back the rest."""
        self._wait_while(lambda: self._busy() and not self.urgent.is_set(), self.options.shutdown_timeout, 0.05)
        if self._busy():
            self._hand_back_all()
        if self.claims_in_doubt:
            self.safe(self._resolve_claims_in_doubt)
        self.recorder.close()
        self.safe(lambda: heartbeat.remove(self.broker, self.token))
        logger.info("worker stopped", extra=self.facts())
        return EXIT_OK

    def _queue_names(self) -> list[str]:
        """The queues to take from; with ``--queues '*'``, every queue Redis knows (cached briefly)."""
        if not self.options.selector.every_queue:
            return list(self.options.selector.names)
        now = time.monotonic()
        if now - self.queues_seen_at > QUEUE_LIST_TTL:
            self.every_queue = sorted(self.broker.queue_names()) or ["default"]
            self.queues_seen_at = now
        return self.every_queue

    def free_slots(self) -> int:
        """Slots not taken by a job that is executing (one that ended but is not yet recorded
        frees its slot at once, so claiming the next jobs overlaps with recording the last),
        and never more than the jobs left of a ``max_jobs`` budget."""
        with self.lock:
            free = self.options.slots - self.executing
        if self.options.max_jobs:
            free = min(free, self.options.max_jobs - self.jobs_started)
        return free

    def _busy(self) -> int:
        with self.lock:
            return len(self.inflight)

    def _executing(self) -> int:
        with self.lock:
            return self.executing

    def _wait_while(self, condition: Callable[[], object], seconds: float, check_every: float) -> None:
        """Wait while ``condition`` holds, for at most ``seconds``, waking as slots are freed."""
        deadline = time.monotonic() + seconds
        while condition() and time.monotonic() < deadline:
            self.slot_freed.wait(check_every)
            self.slot_freed.clear()

    # -- fetching ----------------------------------------------------------------------------------

    def _fetch_loop(self) -> None:
        deep = False  # the last round filled every free slot: more jobs are probably waiting
        while not self.stopping.is_set():
            free = self.free_slots()
            if free <= 0 or (deep and free < self.gather_target):
                self._wait_for_slots(free)
                self.last_claim_attempt = time.monotonic()
                free = self.free_slots()
                if free <= 0:
                    continue
            try:
                if self.claims_in_doubt:
                    self._resolve_claims_in_doubt()
                claimed, next_due_ms = self._claim_round(free)
                deep = claimed >= free
                if claimed:
                    continue
                timeout = self.options.poll_interval
                if next_due_ms is not None:
                    timeout = min(timeout, next_due_ms / 1000)
                if timeout > 0 and not self.stopping.is_set():
                    deep = self._wait_then_claim(free, timeout) >= free
                self.redis_recovered()
            except redis.RedisError as exc:
                self.redis_failed(exc)
            except DatabaseError as exc:
                self.db_failed(exc)

    def _wait_then_claim(self, free: int, timeout: float) -> int:
        """Block on Redis until work arrives (or ``timeout`` passes), then claim from the first queue
        in the same round trip.

        This is the path of a job sent to an idle worker, so it saves what it can: the claim runs in
        Redis the moment the wait ends, without a round trip back here first. Other queues are
        asked in the next claim round.
        """
        first = self._claim_order()[0]
        want = min(free, CLAIM_BATCH)
        claim = self.broker.wait_and_claim(self._queue_names(), timeout, first, self.token, want, self.lease_ms)
        self.last_claim_attempt = time.monotonic()
        return self._start(first, claim.ids) if claim.ids else 0

    def _resolve_claims_in_doubt(self) -> None:
        recovery.hand_back_unstarted(self.broker, self.claims_in_doubt, self.token)
        self.claims_in_doubt = []

    def _wait_for_slots(self, free: int) -> None:
        """Wait for a slot; while the queue is deep, wait a moment longer for several.

        Claiming and marking running cost a round trip to Redis and one to the database whatever
        the batch size, so with a deep queue it pays to claim a few jobs at once instead of one
        each time one finishes. The wait is bounded (``GATHER_WAIT``), so it never idles a slot long.
        """
        if free <= 0:
            self.slot_freed.wait(0.5)
            self.slot_freed.clear()
        deadline = time.monotonic() + GATHER_WAIT
        while self.free_slots() < self.gather_target and not self.stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.slot_freed.wait(left)
            self.slot_freed.clear()

    def _claim_order(self) -> list[str]:
        """The queues to ask this round, in order: strict, weighted, or every queue Redis knows."""
        selector = self.options.selector
        return self._queue_names() if selector.every_queue else selector.order()

    def _claim_round(self, free: int) -> tuple[int, int | None]:
        """Ask each queue in order for up to ``free`` jobs; returns (jobs started, ms to next due)."""
        self.last_claim_attempt = time.monotonic()
        started, next_due = 0, None
        for name in self._claim_order():
            want = min(free - started, CLAIM_BATCH)
            if want <= 0 or self.stopping.is_set():
                break
            claim = self.broker.claim(name, self.token, want, self.lease_ms)
            if claim.next_due_ms is not None:
                next_due = claim.next_due_ms if next_due is None else min(next_due, claim.next_due_ms)
            if claim.ids:
                started += self._start(name, claim.ids)
        return started, next_due

    def _start(self, queue: str, ids: Sequence[str]) -> int:
        """Mark claimed jobs running and hand them to the pool; drop ids whose rows are not runnable."""
        if self.stopping.is_set() or self.dying:
            # Told to stop while claiming: these were never started, so they go straight back.
            self.broker.settle(queue, self.token, [Settlement(i, "release") for i in ids])
            return 0
        try:
            jobs = states.claim(ids, self.token)
        except DatabaseError:
            # The rows could not be marked running: give the leases back and do not run anything.
            # If the connection broke after the commit, the rows are running under this worker's
            # token after all; they are handed back once the database answers again.
            self.claims_in_doubt.extend(ids)
            self.safe(lambda: self.broker.settle(queue, self.token, [Settlement(i, "release") for i in ids]))
            raise
        self.db_recovered()
        skipped: list[str] = []
        if len(jobs) < len(ids):
            got = {str(job.pk) for job in jobs}
            skipped = [i for i in ids if i not in got]
        if skipped:
            # Cancelled while queued, deleted, or a garbage id: its lease is dropped, it never runs.
            self.broker.settle(queue, self.token, [Settlement(i, "ack") for i in skipped])
            logger.info("skipped ids that are not runnable", extra={"queue": queue, "ids": skipped})
        self.jobs_started += len(jobs)
        started: Counter[tuple[str, str]] = Counter()
        self.job_began.clear()
        on_threads = False
        for job in jobs:
            running = prepare(job, self.token, self.options.job_timeout)
            with self.lock:
                self.inflight[running.ctx.job_id] = running
                self.executing += 1
            started[(job.queue, job.type)] += 1
            if wants_event_loop(running):
                self._submit_async(running)
            else:
                self._submit_sync(running)
                on_threads = True
        if on_threads:
            # Let go of the GIL until a pool thread just woken has started its job: otherwise it
            # waits for this thread's next network call, which is 0.1 to 0.2 ms off on an idle machine.
            self.job_began.wait(JOB_BEGAN_WAIT)
        for labels, count in started.items():
            metrics.for_job(*labels).active.inc(count)
        return len(jobs)

    def _submit_sync(self, running: Running) -> None:
        """Queue a job for the pool, starting a thread when none is idle (up to the slot count)."""
        with self.lock:
            spawn = self.idle_threads == 0 and len(self.pool_threads) < self.options.slots
            if spawn:
                # The new thread is for this job; it counts itself idle once the job ends.
                thread = threading.Thread(target=self._pool_thread, name=f"job-{len(self.pool_threads)}", daemon=True)
                self.pool_threads.append(thread)
            else:
                self.idle_threads = max(0, self.idle_threads - 1)
        if spawn:
            thread.start()
        self.work.put(running)

    def _pool_thread(self) -> None:
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
        self.async_tasks[str(running.job.pk)] = future  # type: ignore[assignment]
        future.add_done_callback(lambda f: self._async_done(running, f))

    def _async_done(self, running: Running, future: Any) -> None:
        self.async_tasks.pop(str(running.job.pk), None)
        try:
            ending = future.result()
        except BaseException as exc:  # noqa: BLE001 - cancelled from outside
            ending = conclude(running, error=exc)
        self._ended(ending)

    def _ended(self, ending: Ending) -> None:
        with self.lock:
            self.executing -= 1
        self.recorder.submit(ending)
        self.slot_freed.set()

    def forget(self, runs: Sequence[Running]) -> None:
        """Jobs recorded or handed back: free their slots (and recycle once a ``max_jobs`` budget is spent)."""
        with self.lock:
            for run in runs:
                self.inflight.pop(str(run.job.pk), None)
        self.slot_freed.set()
        # The budget stops claims; the process goes once its last job is recorded, so a recycle
        # never hands back a job that is still running.
        if self.options.max_jobs and self.jobs_started >= self.options.max_jobs and not self.stopping.is_set():
            with self.lock:
                idle = not self.inflight
            if idle:
                logger.info("recycling after max_jobs", extra={"processed": self.processed})
                self.request_stop()

    def _hand_back_all(self) -> None:
        """Stop now: record what has ended, tell running jobs to stop, and release them uncharged."""
        with self.lock:
            running = list(self.inflight.values())
        for run in running:
            run.ctx.cancel("shutdown")
        # Jobs that check their context stop within moments, and one that returns right now has
        # done its work: both are recorded as they end instead of being handed back and run again.
        self._wait_while(self._executing, HAND_BACK_WAIT, 0.01)
        self.recorder.record_then_release_the_rest()

    # -- what the keeper (workers/keeper.py) asks of the process -----------------------------------------

    def cancel_async(self, job_id: str) -> None:
        future = self.async_tasks.get(job_id)
        if future is not None:
            future.cancel()

    def replace_for_timeout(self, stuck: list[Running]) -> None:
        """A job ignored its timeout: record it as timed out, hand the others back, and exit.

        CPython cannot kill a thread, so the process goes and the supervisor starts a new one.
        """
        self.stopping.set()
        logger.error(
            "job ignored its timeout; replacing this worker process",
            extra={"jobs": [str(r.job.pk) for r in stuck], "kill_grace": self.options.kill_grace},
        )

        def timed_out() -> list[Ending]:
            endings = []
            for run in stuck:
                if run.released or str(run.job.pk) not in self.inflight:
                    continue
                ending = conclude(run)
                ending.error = f"timeout: the attempt ran longer than its {run.timeout:g}s limit and was killed with its worker process"
                ending.outcome = Outcome.TIMEOUT
                endings.append(ending)
            return endings

        self.recorder.record_then_release_the_rest(also_record=timed_out)
        self.safe(lambda: heartbeat.remove(self.broker, self.token))
        logging.shutdown()
        os._exit(EXIT_HARD_TIMEOUT)

    def _thread_crashed(self, args: threading.ExceptHookArgs) -> None:
        """A thread died of an error nothing expected (a bug): without it the process would go on
        half-working (no renewals, no recording), so it exits and the supervisor replaces it and
        sends its jobs on at once, as for any worker process that dies."""
        name = args.thread.name if args.thread is not None else "?"
        logger.critical(
            "thread %s crashed; replacing this worker process",
            name,
            exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
        )
        logging.shutdown()
        os._exit(EXIT_THREAD_CRASHED)

    def exit_wedged(self, limit: float) -> None:
        """The fetcher made no claim attempt for ``limit`` seconds: record, hand back, and exit."""
        logger.error("fetcher made no claim attempt for %.0fs; replacing this worker process", limit)
        self.recorder.record_then_release_the_rest()
        logging.shutdown()
        os._exit(EXIT_WEDGED)

    # -- outages -------------------------------------------------------------------------------------

    def redis_failed(self, exc: Exception, sleep: bool = True) -> None:
        down_for = self.redis_outage.failed(exc)
        self.last_claim_attempt = time.monotonic()
        if sleep:
            self.stopping.wait(min(0.1 * (2 ** min(down_for, 4)), 1.0))

    def redis_recovered(self) -> None:
        self.redis_outage.recovered()

    def db_failed(self, exc: Exception, sleep: bool = True) -> None:
        self.db_outage.failed(exc)
        self.last_claim_attempt = time.monotonic()
        for conn in connections.all():
            conn.close_if_unusable_or_obsolete()
        if sleep:
            self.stopping.wait(1.0)

    def db_recovered(self) -> None:
        self.db_outage.recovered()

    def safe(self, action: Callable[[], Any]) -> None:
        try:
            action()
        except (redis.RedisError, DatabaseError) as exc:
            logger.warning("cleanup step failed", extra={"error": str(exc)})

    def facts(self) -> dict[str, Any]:
        return {
            "worker_id": self.token,
            "hostname": self.options.hostname,
            "pid": os.getpid(),
            "queues": "*" if self.options.selector.every_queue else ",".join(self.options.selector.names),
            "concurrency": self.options.slots,
            "busy": self._busy(),
            "processed": self.processed,
            "failed": self.failed,
            "started_at": f"{self.started_at:.3f}",
        }
