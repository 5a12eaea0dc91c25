"""The fetcher of a worker process (its main thread): claims as many jobs as there are free slots.

One Lua call per queue leases them in Redis, one UPDATE marks them running, and the executor runs
them. When the queues are empty it blocks on Redis (BLPOP) until an enqueue wakes it, with the
claim pipelined behind the wait, so a job starts within milliseconds of its submission.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from django.db import DatabaseError

from jobs import recovery, states
from jobs.broker import Broker, BrokerUnavailable, Settlement
from jobs.ids import id_text
from jobs.queue_limits import LimitBook
from workers import metrics
from workers.executor import Executor
from workers.state import WorkerState, best_effort

logger = logging.getLogger("zipline.worker")

CLAIM_BATCH = 64
GATHER_WAIT = 0.003
QUEUE_LIST_TTL = 2.0
SHORT_WAIT = 0.05


class Fetcher:
    """One per worker process; :meth:`run` returns once the process is told to stop."""

    def __init__(self, state: WorkerState, broker: Broker, executor: Executor) -> None:
        self.state = state
        self.options = state.options
        self.broker = broker
        self.executor = executor
        self.every_queue: list[str] = []
        self.queues_seen_at = -QUEUE_LIST_TTL
        # Ids whose claim failed in the database: it may have committed anyway (see _start).
        self.claims_in_doubt: list[str] = []
        # With a deep queue, claim when this many slots are free (bounded by GATHER_WAIT).
        self.gather_target = max(1, min(CLAIM_BATCH, self.options.slots // 2))
        # The queues' limits, passed to every claim (docs/flow-control.md): read from the database each second.
        self.limits = LimitBook()

    def run(self) -> None:
        state = self.state
        deep = False  # the last round filled every free slot: more jobs are probably waiting
        while not state.stopping.is_set():
            free = state.free_slots()
            if free <= 0 or (deep and free < self.gather_target):
                self._wait_for_slots(free)
                state.note_claim_attempt()
                free = state.free_slots()
                if free <= 0:
                    continue
            try:
                self.resolve_claims_in_doubt()
                claimed, next_due_ms, gather_ms = self._claim_round(free)
                deep = claimed >= free
                if claimed:
                    continue
                timeout = self.options.poll_interval
                if next_due_ms is not None:
                    timeout = min(timeout, next_due_ms / 1000)
                if 0 < timeout <= SHORT_WAIT:
                    # A rate limit's next start (or a job due) in a few ms: a local sleep is on time,
                    # where a blocking wait in Redis can end late, and every ms late slows the rate. With
                    # a burst, wait for a few starts at once: a claim costs the same for one job or ten.
                    state.stopping.wait(max(timeout, gather_ms / 1000))
                elif timeout > 0 and not state.stopping.is_set():
                    deep = self._wait_then_claim(free, timeout) >= free
                state.redis_recovered()
            except BrokerUnavailable as exc:
                state.redis_failed(exc)
            except DatabaseError as exc:
                state.db_failed(exc)

    def resolve_claims_in_doubt(self) -> None:
        """Hand back the rows of claims whose answer never came (they may be running under this worker)."""
        if not self.claims_in_doubt:
            return
        recovery.hand_back_unstarted(self.broker, self.claims_in_doubt, self.state.worker_id)
        self.claims_in_doubt = []

    def _queue_names(self) -> list[str]:
        """The queues to take from; with ``--queues '*'``, every queue Redis knows (cached briefly)."""
        if not self.options.selector.every_queue:
            return list(self.options.selector.names)
        now = time.monotonic()
        if now - self.queues_seen_at > QUEUE_LIST_TTL:
            self.every_queue = sorted(self.broker.queue_names()) or ["default"]
            self.queues_seen_at = now
        return self.every_queue

    def _wait_then_claim(self, free: int, timeout: float) -> int:
        """Block on Redis until work arrives (or ``timeout`` passes), then claim from the first queue
        in the same round trip.

        This is the path of a job sent to an idle worker, so it saves what it can: the claim runs in
        Redis the moment the wait ends, without a round trip back here first. Other queues are
        asked in the next claim round.
        """
        state = self.state
        first = self._claim_order()[0]
        want = min(free, CLAIM_BATCH)
        limits = self.limits.get(first)
        claim = self.broker.wait_and_claim(
            self._queue_names(), timeout, first, state.worker_id, want, state.lease_ms, limits
        )
        state.note_claim_attempt()
        if claim.held:
            metrics.count_held(first, claim.held, self.options.metrics_group_labels)
        return self._start(first, claim.ids) if claim.ids else 0

    def _wait_for_slots(self, free: int) -> None:
        """Wait for a slot; while the queue is deep, wait a moment longer for several.

        Claiming and marking running cost a round trip to Redis and one to the database whatever
        the batch size, so with a deep queue it pays to claim a few jobs at once instead of one
        each time one finishes. The wait is bounded (``GATHER_WAIT``), so it never idles a slot long.
        """
        state = self.state
        if free <= 0:
            state.slot_freed.wait(0.5)
            state.slot_freed.clear()
        deadline = time.monotonic() + GATHER_WAIT
        while state.free_slots() < self.gather_target and not state.stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            state.slot_freed.wait(left)
            state.slot_freed.clear()

    def _claim_order(self) -> list[str]:
        """The queues to ask this round, in order: strict, weighted, or every queue Redis knows."""
        selector = self.options.selector
        return self._queue_names() if selector.every_queue else selector.order()

    def _claim_round(self, free: int) -> tuple[int, int | None, float]:
        """Ask each queue in order for up to ``free`` jobs; returns (jobs started, ms to next due, and how
        long a rate that held a queue lets the next claim gather starts: :attr:`FlowLimits.gather_ms`)."""
        state = self.state
        state.note_claim_attempt()
        started, next_due, gather = 0, None, 0.0
        for name in self._claim_order():
            want = min(free - started, CLAIM_BATCH)
            if want <= 0 or state.stopping.is_set():
                break
            limits = self.limits.get(name)
            claim = self.broker.claim(name, state.worker_id, want, state.lease_ms, limits=limits)
            if claim.held:
                metrics.count_held(name, claim.held, self.options.metrics_group_labels)
            if claim.next_due_ms is not None:
                next_due = claim.next_due_ms if next_due is None else min(next_due, claim.next_due_ms)
                gather = max(gather, limits.gather_ms)
            if claim.ids:
                started += self._start(name, claim.ids)
        return started, next_due, gather

    def _start(self, queue: str, ids: Sequence[str]) -> int:
        """Mark claimed jobs running and hand them to the executor; drop ids whose rows are not runnable."""
        worker_id = self.state.worker_id
        if self.state.going:
            # Told to stop while claiming: these were never started, so they go straight back.
            self.broker.settle(queue, worker_id, [Settlement(i, "release") for i in ids])
            return 0
        try:
            jobs = states.claim(ids, worker_id)
        except DatabaseError:
            # The rows could not be marked running: give the leases back and do not run anything.
            # If the connection broke after the commit, the rows are running under this worker's
            # id after all; they are handed back once the database answers again.
            self.claims_in_doubt.extend(ids)
            best_effort(lambda: self.broker.settle(queue, worker_id, [Settlement(i, "release") for i in ids]))
            raise
        self.state.db_recovered()
        if len(jobs) < len(ids):
            got = {id_text(job) for job in jobs}
            self._drop_unrunnable(queue, [i for i in ids if i not in got])
        self.executor.start(jobs)
        return len(jobs)

    def _drop_unrunnable(self, queue: str, skipped: list[str]) -> None:
        """Cancelled while queued, deleted, or a garbage id: its lease is dropped, it never runs."""
        if skipped:
            self.broker.settle(queue, self.state.worker_id, [Settlement(i, "ack") for i in skipped])
            logger.info("skipped ids that are not runnable", extra={"queue": queue, "ids": skipped})
