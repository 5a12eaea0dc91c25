"""One worker process: claims jobs from Redis, runs them on threads (or its event loop), records them.

This module only wires the parts together; they share one :class:`~workers.state.WorkerState`
(jobs in flight, slots, stop signals, counters, outages). Threads:

- the main thread is the *fetcher* (:mod:`workers.fetcher`): it claims as many jobs as there are
  free slots, marks them running in one UPDATE, and hands them to the executor; with the queues
  empty it blocks on Redis until an enqueue wakes it;
- the *executor*'s job threads, and one event loop thread for ``async`` processors
  (:mod:`workers.executor`), run jobs;
- the *recorder* (:mod:`workers.recorder`) records outcomes in batches (one UPDATE and one INSERT
  for many jobs, then one Redis call per queue), retrying while the database is out of reach;
- the *keeper* (:mod:`workers.keeper`) renews leases, notices cancellations and timeouts,
  publishes the heartbeat, and has this process replaced when a job ignores its hard timeout.

Shutdown (:mod:`workers.exits`): the first SIGTERM stops claiming and lets running jobs finish for
the shutdown timeout, then hands the rest back uncharged; a second SIGTERM hands them back at once.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import threading
from typing import Any

from jobs.broker import Broker, get_broker
from workers import exits, loaded_modules
from workers.executor import Executor
from workers.fetcher import Fetcher
from workers.keeper import Keeper
from workers.recorder import Recorder
from workers.state import WorkerOptions, WorkerState

__all__ = ["WorkerOptions", "WorkerProcess"]

logger = logging.getLogger("zipline.worker")


def _set_parent_death_signal() -> None:
    """Ask Linux to send SIGTERM when the supervisor dies, so orphans drain and exit (F03)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the keeper's ppid check covers it


class WorkerProcess:
    """Builds the parts of one worker process around their shared state and runs them until stopped."""

    def __init__(self, options: WorkerOptions, broker: Broker | None = None) -> None:
        self.broker = broker or get_broker()
        self.state = WorkerState(options)
        self.recorder = Recorder(self.state, self.broker)
        self.executor = Executor(self.state, self.recorder)
        self.fetcher = Fetcher(self.state, self.broker, self.executor)
        self.keeper = Keeper(self.state, self.broker, self.executor, self.recorder)

    def run(self) -> int:
        """Run until stopped; returns the process exit code."""
        if self.state.options.parent_pid:
            _set_parent_death_signal()
        signal.signal(signal.SIGTERM, self._on_signal)
        # The supervisor turns Ctrl-C and a hang-up (sent to the whole group) into SIGTERM.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        threading.excepthook = exits.thread_crashed
        threading.Thread(target=self.recorder.run, name="recorder", daemon=True).start()
        threading.Thread(target=self.keeper.run, name="keeper", daemon=True).start()
        logger.info("worker started", extra=self.state.facts())
        try:
            self.fetcher.run()
        finally:
            code = exits.drain(self.state, self.fetcher, self.recorder, self.broker)
            loaded_modules.report("worker")
        return code

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.state.stop_signalled()
