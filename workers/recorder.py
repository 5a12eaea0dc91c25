"""The recorder of a worker process: writes how attempts ended, settles their leases, hands jobs back.

Its thread takes endings in batches: one UPDATE and one INSERT for many jobs, then
one Redis call per queue. Database writes are retried until they succeed (rule 7), Redis writes
for up to a lease (after that the reclaimer repairs). When the process goes away it records what
has ended and releases everything else uncharged, and from then on writes nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

from django.db import InterfaceError, OperationalError

from jobs import recovery, states, tally
from jobs.broker import Broker, BrokerUnavailable, Settlement, due_score
from jobs.broker.items import SettleAction
from jobs.ids import id_text
from jobs.models import Outcome, Status
from jobs.states import Recorded
from workers import metrics, outcomes
from workers.execution import Ending, Running
from workers.state import WorkerState, best_effort

logger = logging.getLogger("zipline.worker")

FINISH_BATCH = 256
# What a database that is down, restarting or out of reach raises; worth retrying until it answers.
UNREACHABLE = (OperationalError, InterfaceError)


class Recorder:
    """One per worker process; :meth:`run` is the body of its thread."""

    def __init__(self, state: WorkerState, broker: Broker) -> None:
        self.state = state
        self.broker = broker
        self.worker_id = state.worker_id
        # Held from taking endings to having written them, so that the process cannot hand a job
        # back while its ending is on its way to the database (it would run twice).
        self.lock = threading.Lock()
        self._arrived = threading.Condition()  # guards _pending and _closed
        self._pending: list[Ending] = []
        self._closed = False

    def submit(self, ending: Ending) -> None:
        """A job ended: queue its ending for the recorder's thread, unless the job was handed back meanwhile."""
        with self._arrived:
            if ending.running.released:
                return
            ending.running.ended = True
            self._pending.append(ending)
            self._arrived.notify()

    def close(self) -> None:
        """No more endings will come: the recorder's thread stops once it has written those it has."""
        with self._arrived:
            self._closed = True
            self._arrived.notify()

    def run(self) -> None:
        while True:
            with self._arrived:
                while not self._pending and not self._closed:
                    self._arrived.wait()
                if not self._pending:
                    return
            with self.lock:
                batch = self._take(FINISH_BATCH)
                if batch and not self.state.dying:
                    self.record(batch)

    def _take(self, limit: int | None = None) -> list[Ending]:
        """Endings waiting to be written (the caller holds :attr:`lock`)."""
        with self._arrived:
            batch = self._pending[:limit]
            del self._pending[: len(batch)]
        return batch

    def record(self, endings: list[Ending]) -> None:
        """Record outcomes (retrying while the database is unreachable), then settle leases."""
        handed_back = [e for e in endings if e.handed_back]
        finished = [e for e in endings if not e.handed_back]
        if handed_back:
            self.release([e.running for e in handed_back])
        if not finished:
            return
        results = [outcomes.attempt_result(e, self.state.options.max_result_bytes) for e in finished]
        try:
            recorded = self._retry_db(lambda: states.record(results))
        except Exception as exc:  # noqa: BLE001 - the database refused the batch: see _record_alone
            logger.error(
                "the database refused a batch of outcomes; recording them one by one",
                extra={"jobs": len(results), "error": f"{type(exc).__name__}: {exc}"[:500]},
            )
            recorded = self._record_alone(results)
        if recorded is None:
            return  # dying: the leases expire and the reclaimer charges these attempts
        self._settle(recorded)
        self.state.count(outcomes.account(finished, recorded))
        self.state.forget([e.running for e in finished])

    def _record_alone(self, results: Sequence[states.AttemptResult]) -> list[Recorded] | None:
        """Record each outcome on its own, so that one the database refuses holds up no other."""
        recorded = []
        for result in results:
            rec = self._record_one(result)
            if rec is None:
                return None  # dying
            recorded.append(rec)
        return recorded

    def _record_one(self, result: states.AttemptResult) -> Recorded | None:
        """One outcome; if the database refuses it (a value it cannot store that got past the
        checks), a permanent failure that says why. None if the process is going away."""
        try:
            return self._record_first(result)
        except Exception as exc:  # noqa: BLE001 - whatever it was, it would fail the same way again
            refused = replace(
                result, outcome=Outcome.FAILED, result=None, traceback="", permanent=True,
                error=f"the outcome could not be stored: {type(exc).__name__}: {str(exc)[:500]!r}",
            )  # fmt: skip
        try:
            return self._record_first(refused)
        except Exception as again:  # noqa: BLE001 - left to the reclaimer, as for a lost worker
            logger.error("could not record an outcome", extra={"job_id": str(result.job.pk), "error": repr(again)})
            return Recorded(result.job, None, None)

    def _record_first(self, result: states.AttemptResult) -> Recorded | None:
        recorded = self._retry_db(partial(states.record, [result]))
        return recorded[0] if recorded else None

    def release(self, runs: Sequence[Running]) -> None:
        """Hand jobs back to their queue without charging the attempt."""
        for run in runs:
            run.released = True
        released = self._retry_db(lambda: states.release([r.job for r in runs])) or []
        released_ids = {id_text(j) for j in released}
        by_queue: dict[str, list[Settlement]] = defaultdict(list)
        for run in runs:
            action: SettleAction = "release" if id_text(run.job) in released_ids else "ack"
            by_queue[run.job.queue].append(Settlement(id_text(run.job), action, 0, run.job.priority))
            metrics.for_job(run.job.queue, run.job.type).active.dec()
        for queue_name, settlements in by_queue.items():
            self._retry_redis(partial(self.broker.settle, queue_name, self.worker_id, settlements))
        if runs:
            logger.info("handed jobs back", extra={"jobs": [str(r.job.pk) for r in runs]})
        self.state.forget(runs)

    def record_then_release_the_rest(self, also_record: Callable[[], list[Ending]] | None = None) -> None:
        """Going away: record what has ended (and ``also_record``), release every other job
        uncharged, and stop the recorder from writing anything more.

        Which jobs have ended is decided once, under the lock :meth:`submit` takes, so that no job is
        both recorded and released: one that ends after it is released has its ending dropped.
        """
        with self.lock:
            extra = also_record() if also_record is not None else []
            with self._arrived:
                extra = [e for e in extra if not e.running.ended]  # one that ended after all: its own ending
                for ending in extra:
                    ending.running.released = True  # recorded here: an ending it still sends is dropped
                left = self.state.release_unended(recorded_here={id(e.running) for e in extra})
            self.record(self._take() + extra)
            self.release(left)
            self.state.mark_dying()

    def _settle(self, recorded: Sequence[Recorded]) -> None:
        by_queue: dict[str, list[Settlement]] = defaultdict(list)
        statuses: dict[str, list[str | None]] = defaultdict(list)
        for rec in recorded:
            job = rec.job
            if rec.status == Status.RETRYING and rec.due is not None:
                by_queue[job.queue].append(Settlement(id_text(job), "retry", due_score(rec.due), job.priority))
            else:
                by_queue[job.queue].append(Settlement(id_text(job), "ack"))
            statuses[job.queue].append(rec.status)
        for queue_name, settlements in by_queue.items():
            counts = tally.of_statuses(statuses[queue_name]).as_counts()
            self._retry_redis(partial(self.broker.settle, queue_name, self.worker_id, settlements, counts))
        stale = [rec.job for rec in recorded if rec.status is None]
        if stale:
            best_effort(lambda: recovery.requeue_lost_claims(self.broker, stale))

    def _retry_db(self, action: Callable[[], Any]) -> Any:
        """Retry a database write while the database is unreachable (rule 7), unless this process
        is going away. Other errors (a value refused) would fail the same way again: they are raised."""
        state = self.state
        return self._retry(action, UNREACHABLE, state.db_failed, state.db_recovered, max_delay=2.0)

    def _retry_redis(self, action: Callable[[], Any]) -> Any:
        """Retry a Redis write for up to a lease: a lost ack leaves a lease for the reclaimer to repair."""
        state = self.state
        return self._retry(
            action, BrokerUnavailable, state.redis_failed, state.redis_recovered, max_delay=1.0,
            give_up_after=state.options.lease_ttl,
        )  # fmt: skip

    def _retry(
        self,
        action: Callable[[], Any],
        errors: type[Exception] | tuple[type[Exception], ...],
        failed: Callable[..., None],
        recovered: Callable[[], None],
        max_delay: float,
        give_up_after: float | None = None,
    ) -> Any:
        """Run ``action`` until it succeeds, backing off; None if the process is dying or time runs out."""
        delay = 0.05
        deadline = None if give_up_after is None else time.monotonic() + give_up_after
        while True:
            try:
                value = action()
            except errors as exc:
                failed(exc, sleep=False)
                if self.state.dying or (deadline is not None and time.monotonic() > deadline):
                    return None
                time.sleep(delay)
                delay = min(delay * 2, max_delay)
                continue
            recovered()
            return value
