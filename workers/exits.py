"""How a worker process ends: drained after a stop signal, or replaced when a job ignores its hard
timeout, the fetcher wedges or a thread crashes.

Losing a job is worse than running it twice, so every way out records what has ended and hands
the rest back uncharged before the process goes; the supervisor replaces a process that exits
with a code other than :data:`EXIT_OK`.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import NoReturn

from jobs.broker import Broker, heartbeat
from jobs.models import Outcome
from workers.execution import Ending, Running, conclude
from workers.fetcher import Fetcher
from workers.recorder import Recorder
from workers.state import WorkerState, best_effort

logger = logging.getLogger("zipline.worker")

EXIT_OK = 0
EXIT_HARD_TIMEOUT = 3
EXIT_WEDGED = 4
EXIT_THREAD_CRASHED = 5
HAND_BACK_WAIT = 0.25  # after telling running jobs to stop for a shutdown, before handing them back


def drain(state: WorkerState, fetcher: Fetcher, recorder: Recorder, broker: Broker) -> int:
    """Let running jobs finish within the shutdown timeout, then hand back the rest; the exit code."""
    state.wait_while(lambda: state.busy() and not state.urgent.is_set(), state.options.shutdown_timeout, 0.05)
    if state.busy():
        hand_back_all(state, recorder)
    best_effort(fetcher.resolve_claims_in_doubt)
    recorder.close()
    best_effort(lambda: heartbeat.remove(broker, state.worker_id))
    logger.info("worker stopped", extra=state.facts())
    return EXIT_OK


def hand_back_all(state: WorkerState, recorder: Recorder) -> None:
    """Stop now: record what has ended, tell running jobs to stop, and release them uncharged."""
    for run in state.held():
        run.ctx.cancel("shutdown")
    # Jobs that check their context stop within moments, and one that returns right now has
    # done its work: both are recorded as they end instead of being handed back and run again.
    state.wait_while(state.executing_now, HAND_BACK_WAIT, 0.01)
    recorder.record_then_release_the_rest()


def replace_for_timeout(state: WorkerState, recorder: Recorder, broker: Broker, stuck: list[Running]) -> NoReturn:
    """A job ignored its timeout: record it as timed out, hand the others back, and exit.

    CPython cannot kill a thread, so the process goes and the supervisor starts a new one.
    """
    state.stopping.set()
    logger.error(
        "job ignored its timeout; replacing this worker process",
        extra={"jobs": [str(r.job.pk) for r in stuck], "kill_grace": state.options.kill_grace},
    )

    def timed_out() -> list[Ending]:
        endings = []
        for run in stuck:
            if run.released or str(run.job.pk) not in state.inflight:
                continue
            ending = conclude(run)
            ending.error = f"timeout: the attempt ran longer than its {run.timeout:g}s limit and was killed with its worker process"
            ending.outcome = Outcome.TIMEOUT
            endings.append(ending)
        return endings

    recorder.record_then_release_the_rest(also_record=timed_out)
    best_effort(lambda: heartbeat.remove(broker, state.worker_id))
    logging.shutdown()
    os._exit(EXIT_HARD_TIMEOUT)


def exit_wedged(recorder: Recorder, limit: float) -> NoReturn:
    """The fetcher made no claim attempt for ``limit`` seconds: record, hand back, and exit."""
    logger.error("fetcher made no claim attempt for %.0fs; replacing this worker process", limit)
    recorder.record_then_release_the_rest()
    logging.shutdown()
    os._exit(EXIT_WEDGED)


def thread_crashed(args: threading.ExceptHookArgs) -> NoReturn:
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
