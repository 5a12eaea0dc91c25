"""The supervisor of ``manage.py runworkers``: forks worker processes and keeps them running.

It replaces a worker process that dies, and at once hands the dead process's jobs back through
their retry policy as attempts lost to the worker ("worker lost (signal 9)"), instead of waiting
for their leases to expire. SIGTERM or SIGINT is passed on to the workers as SIGTERM (they drain);
a second one makes them hand back their jobs at once. It serves the merged metrics and a liveness
endpoint, and touches the liveness file that ``manage.py probe workers`` reads.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from django.db import connections

from workers import loaded_modules
from workers.process import WorkerOptions, WorkerProcess
from workers.selection import QueueSelector
from zipline_site.sections import MetricsConfig, WorkerConfig

logger = logging.getLogger("zipline.supervisor")

RESPAWN_BACKOFF_MAX = 5.0
QUICK_DEATH = 2.0
HEALTHY_LOOP_AGE = 10.0
# SIGHUP too: a closed terminal sends it (to the whole process group) and must not kill running jobs.
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


@dataclass
class PoolOptions:
    """The pool's size and queues (settings overridden by flags), and the sections it passes on."""

    processes: int
    concurrency: int
    selector: QueueSelector
    worker: WorkerConfig
    metrics: MetricsConfig
    max_result_bytes: int


@dataclass
class Child:
    pid: int
    worker_id: str
    started: float
    slots: int


def slot_plan(concurrency: int, processes: int) -> list[int]:
    """The slots of each worker process: ``concurrency`` in all, as evenly as can be.

    Never more processes than slots: a process with no slot would run nothing.
    """
    processes = max(1, min(processes, concurrency))
    base, extra = divmod(concurrency, processes)
    return [base + 1] * extra + [base] * (processes - extra)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        return f"signal {number} ({signal.Signals(number).name})"
    return f"exit code {os.WEXITSTATUS(status)}"


class Supervisor:
    def __init__(self, options: PoolOptions) -> None:
        self.options = options
        self.plan = slot_plan(options.concurrency, options.processes)
        self.hostname = socket.gethostname()
        self.children: dict[int, Child] = {}
        self.stopping = False
        self.signals = 0
        self.quick_deaths = 0
        self.metrics_dir: str | None = None
        self.last_beat = 0.0

    # -- main loop -----------------------------------------------------------------------------------

    def run(self) -> int:
        from workers import metrics_server
        from zipline_site import liveness

        if self.options.metrics.enabled:
            self.metrics_dir = metrics_server.prepare()
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._on_signal)
        if self.options.metrics.enabled:
            host, port = self.options.metrics.host, self.options.metrics.port
            try:
                metrics_server.serve(
                    host,
                    port,
                    self.options.metrics.path,
                    metrics_server.registry(self.options.metrics.group_labels),
                    self._healthy,
                )
            except OSError as exc:
                line = metrics_server.unavailable("worker metrics", host, port, "JQS_METRICS_PORT", exc)
                logger.error(line, extra={"host": host, "port": port})
        self._log_started()
        connections.close_all()
        for _ in self.plan:
            if self.stopping:  # a signal during start-up: start no more
                break
            self._spawn()
        gc.enable()  # manage.py turned it off for the start-up; what is frozen stays out of its reach
        self._watch(liveness)
        if self.metrics_dir:
            metrics_server.cleanup(self.metrics_dir)
        loaded_modules.report("supervisor")
        logger.info("supervisor stopped")
        return 0

    def _log_started(self) -> None:
        selector = self.options.selector
        logger.info(
            "supervisor started",
            extra={
                "processes": len(self.plan),
                "slots": self.plan,
                "queues": ["*"] if selector.every_queue else list(selector.names),
                "weighted": selector.weighted,
            },
        )

    def _watch(self, liveness: Any) -> None:
        """Beat, reap and replace children (backing off after quick deaths) until stopped and all are gone."""
        next_spawn_at = 0.0
        while self.children or not self.stopping:
            self._beat(liveness)
            self._reap()
            missing = len(self.plan) - len(self.children)
            if not self.stopping and missing > 0 and time.monotonic() >= next_spawn_at:
                self._spawn()
                next_spawn_at = time.monotonic() + min(
                    RESPAWN_BACKOFF_MAX, 0.1 * (2**self.quick_deaths) if self.quick_deaths else 0
                )
            time.sleep(0.05)

    def _beat(self, liveness: Any) -> None:
        """Once a second: the liveness file, and the process gauge (always present, 0 or more)."""
        now = time.monotonic()
        if now - self.last_beat < 1.0:
            return
        self.last_beat = now
        liveness.touch("workers")
        if self.options.metrics.enabled:
            from workers import metrics

            metrics.WORKER_PROCESSES.set(len(self.children))

    def _healthy(self) -> bool:
        """Alive: the main loop ran lately (not wedged) and worker processes run (or are stopping)."""
        loop_fresh = time.monotonic() - self.last_beat < HEALTHY_LOOP_AGE
        return loop_fresh and (bool(self.children) or self.stopping)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.signals += 1
        self.stopping = True
        logger.info(
            "stopping: %s",
            "draining running jobs" if self.signals == 1 else "handing running jobs back now",
            extra={"signal": signal.Signals(signum).name},
        )
        for child in list(self.children.values()):
            try:
                os.kill(child.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    # -- children ------------------------------------------------------------------------------------

    def _slots_missing(self) -> int:
        """The slots of a process the plan has and the running children lack."""
        held = Counter(child.slots for child in self.children.values())
        for slots in self.plan:
            if held[slots]:
                held[slots] -= 1
            else:
                return slots
        return self.plan[-1]

    def _spawn(self) -> None:
        slots = self._slots_missing()
        suffix = uuid.uuid4().hex[:6]
        parent = os.getpid()
        connections.close_all()
        # Move everything loaded so far (Django, the app: about 100,000 objects) out of the collectors'
        # reach, for good: a full collection in a worker then takes microseconds instead of about
        # 40 ms, which would stall every job in the process, and neither process's collector writes
        # to the pages they share (which would copy them: memory). What is created later stays collectable.
        gc.freeze()
        # A stop signal waits until the child is in self.children (so the handler signals it too) and,
        # in the child, until the supervisor's handler is replaced (it would signal the siblings).
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            pid = os.fork()
        except OSError:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            raise
        if pid == 0:  # pragma: no cover - runs in the child
            gc.enable()  # manage.py turned it off for the start-up
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            # The supervisor turns Ctrl-C and a hang-up (sent to the whole group) into SIGTERM.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            code = 1
            try:
                code = self._child_main(f"{self.hostname}:{os.getpid()}:{suffix}", parent, slots)
            except BaseException:  # noqa: BLE001
                logger.exception("worker process crashed")
            finally:
                logging.shutdown()
                os._exit(code)
        worker_id = f"{self.hostname}:{pid}:{suffix}"
        self.children[pid] = Child(pid, worker_id, time.monotonic(), slots)
        if self.stopping:  # the handler ran during this spawn, before the signals were blocked
            os.kill(pid, signal.SIGTERM)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        logger.info("worker process started", extra={"pid": pid, "worker_id": worker_id, "slots": slots})

    def _child_main(self, worker_id: str, parent: int, slots: int) -> int:
        import random

        from jobs.broker import reset_broker

        random.seed()
        reset_broker()
        worker = self.options.worker
        options = WorkerOptions(
            worker_id=worker_id,
            selector=self.options.selector,
            slots=slots,
            poll_interval=worker.poll_interval,
            job_timeout=worker.job_timeout,
            shutdown_timeout=worker.shutdown_timeout,
            lease_ttl=worker.lease_ttl,
            kill_grace=worker.kill_grace,
            max_jobs=worker.max_jobs,
            max_result_bytes=self.options.max_result_bytes,
            parent_pid=parent,
            hostname=self.hostname,
            metrics_group_labels=self.options.metrics.group_labels,
        )
        return WorkerProcess(options).run()

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self.children.pop(pid, None)
            if child is None:
                continue
            from workers import metrics_server

            metrics_server.process_died(pid)
            how = _describe(status)
            clean = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
            lived = time.monotonic() - child.started
            self.quick_deaths = self.quick_deaths + 1 if (lived < QUICK_DEATH and not clean) else 0
            log = logger.info if clean else logger.error
            log(
                "worker process exited",
                extra={"pid": pid, "worker_id": child.worker_id, "how": how, "lived_seconds": round(lived, 1)},
            )
            self._recover_jobs(child, how)

    def _recover_jobs(self, child: Child, how: str) -> None:
        """Charge the jobs a dead process held as lost to the worker, and send them on."""
        from jobs.broker import get_broker
        from jobs.recovery import recover_worker

        try:
            charged = recover_worker(get_broker(), child.worker_id, f"worker lost ({how})")
        except Exception as exc:  # noqa: BLE001 - the supervisor must outlive any one recovery
            # Their leases expire and the scheduler's reclaimer charges them instead.
            logger.warning(
                "could not recover a dead worker's jobs now", extra={"worker_id": child.worker_id, "error": str(exc)}
            )
            return
        if charged:
            logger.warning("recovered a dead worker's jobs", extra={"worker_id": child.worker_id, "jobs": len(charged)})
        if self.options.metrics.enabled:
            from jobs import tally
            from workers import metrics

            for recorded in charged:
                metrics.count(
                    metrics.for_job(recorded.job.queue, recorded.job.type), tally.of_statuses([recorded.status])
                )
