"""The reconciler: Redis is a projection of the database, rebuilt from it whenever they disagree.

Two passes, both idempotent and safe with several schedulers (``restore.lua`` never disturbs or
duplicates an entry, ``remove.lua`` only touches waiting ids: ready, delayed, in a lane):

- :func:`rebuild` after Redis lost its data (``epoch`` key missing: a restart without persistence,
  FLUSHALL, a failover to an empty replica) and for ``manage.py rebuildqueues``. Every live row goes
  back: pending rows to the ready set in priority then FIFO order, scheduled and retrying rows to the
  delayed set at their due times (a due time already passed goes to the ready set), running rows as
  fresh leases owned by the row's worker, so a running job keeps running and its worker can still
  renew and settle it. Paused queues are paused again. The epoch is marked last, and only if the
  rebuild's lock survived, so a second loss during the rebuild is noticed and rebuilt again.
- :func:`reconcile` every poll interval. It closes the window between a committed row and its Redis
  entry (a process that died in between): live rows unchanged for longer than the grace period and
  missing from Redis are restored. Ids in the ready and delayed sets and in a flow queue's lanes (those
  in turn, parked by a rate or waiting for a slot) whose row is gone, malformed, or
  finished for longer than the grace period are dropped (invariant I4), due rows a scheduler promoted
  without marking are marked pending, and each queue's paused flag follows the database.

The grace period keeps the reconciler away from rows whose writer is still between its commit and its
Redis write.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Case, Value, When
from django.utils import timezone

from jobs import queue_limits, states
from jobs.broker import Broker, RestoreItem, due_score
from jobs.broker.locks import Lock
from jobs.ids import parse_job_ids
from jobs.lifecycle import DELAYED, is_due
from jobs.limits import lane
from jobs.models import WAITING, Job, QueueState, Status

logger = logging.getLogger("zipline.scheduler")

REBUILD_LOCK_TTL = 15.0
_ROW_CHUNK = 2000


def job_uuids(ids: Iterable[str]) -> Iterator[uuid.UUID]:
    """The ids that are well-formed job ids (Redis may hold garbage written by hand)."""
    yield from parse_job_ids(ids)


@dataclass
class ReconcileReport:
    restored: Counter[str] = field(default_factory=Counter)  # queue -> entries created
    checked: int = 0
    orphans: int = 0
    marked_pending: int = 0
    paused_synced: int = 0
    complete: bool = True

    @property
    def total_restored(self) -> int:
        return sum(self.restored.values())


def _item(
    job_id: uuid.UUID, status: str, priority: int, schedule_at: datetime | None, worker: str, lane: str = ""
) -> RestoreItem:
    if status == Status.RUNNING:
        return RestoreItem(str(job_id), "lease", worker_id=worker, lane=lane)
    if status in DELAYED and schedule_at is not None:
        return RestoreItem(str(job_id), "delayed", priority, due_ms=due_score(schedule_at), lane=lane)
    return RestoreItem(str(job_id), "ready", priority, lane=lane)


class _Limited:
    """Whether a queue has limits, read once per pass: its restored jobs then wait under them."""

    def __init__(self) -> None:
        self.known: dict[str, bool] = {}

    def __call__(self, queue: str) -> bool:
        if queue not in self.known:
            self.known[queue] = queue_limits.load([queue])[queue].is_set
        return self.known[queue]


def _live_rows(cutoff: datetime | None) -> Any:
    """Live rows (unchanged since ``cutoff``) by queue, running ones first, then priority and FIFO."""
    rows = Job.objects.live()
    if cutoff is not None:
        rows = rows.filter(updated_at__lte=cutoff)
    running_first = Case(When(status=Status.RUNNING, then=Value(0)), default=Value(1))
    return rows.order_by("queue", running_first, "-priority", "created_at", "id").values_list(
        "id", "queue", "status", "priority", "schedule_at", "worker", "type", "group"
    )


def restore_rows(
    broker: Broker,
    *,
    cutoff: datetime | None,
    lease_ttl: float,
    batch: int,
    report: ReconcileReport,
    keep_going: Callable[[], bool] = lambda: True,
) -> bool:
    """Put every live row (unchanged since ``cutoff``, if given) back into Redis where it is missing.

    Rows go queue by queue, running rows first (their leases hold their concurrency slots before any
    waiting job is back), then in priority then FIFO order, ``batch`` per script call. Returns False
    if ``keep_going`` said stop.
    """
    ordered = _live_rows(cutoff)
    limited = _Limited()
    lease_ms = int(lease_ttl * 1000)
    queue: str | None = None
    chunk: list[RestoreItem] = []

    def flush() -> bool:
        if chunk and queue is not None:
            report.restored[queue] += broker.restore(queue, chunk, lease_ms, limited(queue))
            report.checked += len(chunk)
            chunk.clear()
        return keep_going()

    for job_id, row_queue, status, priority, schedule_at, worker, job_type, group in ordered.iterator(
        chunk_size=_ROW_CHUNK
    ):
        if row_queue != queue or len(chunk) >= batch:
            if not flush():
                return False
            queue = row_queue
        chunk.append(_item(job_id, status, priority, schedule_at, worker, lane(job_type, group)))
    return flush()


def drop_orphans(
    broker: Broker, queue: str, *, cutoff: datetime, now: datetime, batch: int, report: ReconcileReport
) -> None:
    """Remove waiting ids (ready, delayed, and every lane of a flow queue, held by a limit or not) whose
    row is gone, malformed, or finished since before ``cutoff``."""
    for structure in ("ready", "delayed"):
        for ids in broker.scan_ids(queue, structure, batch):
            _sweep(broker, queue, structure, ids, cutoff, now, report)
    for lanes in broker.flow_lanes(queue, batch):
        for lane_name in lanes:
            for ids in broker.scan_lane(queue, lane_name, batch):
                _sweep(broker, queue, f"lane:{lane_name}", ids, cutoff, now, report)


def _sweep(
    broker: Broker, queue: str, structure: str, ids: list[str], cutoff: datetime, now: datetime, report: ReconcileReport
) -> None:
    valid = {str(u): u for u in job_uuids(ids)}
    rows = {
        str(pk): (status, updated_at, schedule_at)
        for pk, status, updated_at, schedule_at in Job.objects.filter(pk__in=list(valid.values())).values_list(
            "pk", "status", "updated_at", "schedule_at"
        )
    }
    orphans: list[str] = []
    unmarked: list[uuid.UUID] = []
    for text in ids:
        if text not in valid or text not in rows:
            orphans.append(text)
            continue
        status, updated_at, schedule_at = rows[text]
        if status not in WAITING and updated_at <= cutoff:
            orphans.append(text)
        elif structure != "delayed" and is_due(status, schedule_at, now):
            unmarked.append(valid[text])
    if orphans:
        removed = broker.remove(queue, orphans)
        report.orphans += removed
        logger.warning(
            "dropped orphan ids from Redis",
            extra={"queue": queue, "structure": structure, "count": removed, "sample": orphans[:5]},
        )
    if unmarked:
        marked = states.mark_promoted(unmarked)
        report.marked_pending += marked
        if marked:
            logger.info("marked promoted jobs pending", extra={"queue": queue, "count": marked})


def sync_paused(broker: Broker, *, cutoff: datetime | None, report: ReconcileReport) -> None:
    """Make each queue's paused flag in Redis follow ``QueueState`` (changed before ``cutoff``, if given)."""
    queue_states = QueueState.objects.all()
    if cutoff is not None:
        queue_states = queue_states.filter(updated_at__lte=cutoff)
    for state in queue_states:
        in_redis = broker.is_paused(state.name)
        if in_redis != state.paused:
            broker.set_paused(state.name, state.paused)
            report.paused_synced += 1
            logger.warning(
                "queue paused again from the database" if state.paused else "queue resumed from the database",
                extra={"queue": state.name, "paused": state.paused},
            )


def _log_restored(report: ReconcileReport, message: str) -> None:
    for queue, count in sorted(report.restored.items()):
        if count:
            logger.warning(message, extra={"queue": queue, "restored": count})


def rebuild(
    broker: Broker,
    *,
    owner: str,
    lease_ttl: float,
    batch: int,
    should_stop: Callable[[], bool] = lambda: False,
    lock: bool = True,
    initialising: bool = False,
) -> ReconcileReport | None:
    """Rebuild every queue from the database; None if another scheduler is rebuilding already.

    With ``lock`` (the scheduler), one scheduler rebuilds at a time and the epoch is marked only if the
    lock survived the rebuild: a lock that vanished means Redis lost its data again meanwhile.
    ``initialising`` (a new Redis for a database without jobs) reports at info level: nothing was lost.
    """
    started = time.monotonic()
    guard = Lock(broker, "rebuild", owner, REBUILD_LOCK_TTL)
    if lock and not guard.acquire():
        return None
    report = ReconcileReport()
    try:

        def keep_going() -> bool:
            return not should_stop() and (not lock or guard.refresh())

        finished = restore_rows(
            broker, cutoff=None, lease_ttl=lease_ttl, batch=batch, report=report, keep_going=keep_going
        )
        report.complete = finished and _mark_rebuilt(broker, guard if lock else None, report)
    finally:
        if lock:
            guard.release()
    _log_rebuilt(report, started, initialising)
    return report


def _mark_rebuilt(broker: Broker, guard: Lock | None, report: ReconcileReport) -> bool:
    """Sync the paused flags and mark the epoch; False when ``guard`` was lost meanwhile (Redis lost its data again)."""
    sync_paused(broker, cutoff=None, report=report)
    broker.mark_epoch()
    # Marked, then checked: a loss before the check took the lock too, and undoes the mark.
    if guard is not None and not guard.held():
        broker.clear_epoch()
        return False
    return True


def _log_rebuilt(report: ReconcileReport, started: float, initialising: bool) -> None:
    _log_restored(report, "queue rebuilt from the database")
    if initialising and report.complete:
        logger.info("Redis initialised", extra={"seconds": round(time.monotonic() - started, 3)})
        return
    logger.warning(
        "Redis rebuilt from the database" if report.complete else "Redis rebuild interrupted; it will run again",
        extra={
            "restored": report.total_restored,
            "checked": report.checked,
            "queues": len(report.restored),
            "paused_synced": report.paused_synced,
            "seconds": round(time.monotonic() - started, 3),
        },
    )


def ensure_epoch(broker: Broker, **kwargs: object) -> ReconcileReport | None:
    """Rebuild if Redis has no epoch marker; None when nothing was done.

    A missing marker is a loss only when the database holds jobs that Redis was told about. A database
    without any job means a first start (or a new Redis before any submit): Redis is initialised, at
    info level, so that a warning always means that Redis lost something.
    """
    if broker.epoch_present():
        return None
    if not Job.objects.exists():
        logger.info("Redis has no epoch marker and the database no jobs; initialising")
        return rebuild(broker, initialising=True, **kwargs)  # type: ignore[arg-type]
    logger.warning("Redis has lost its data (no epoch marker); rebuilding from the database")
    return rebuild(broker, **kwargs)  # type: ignore[arg-type]


def reconcile(
    broker: Broker, *, grace: float, lease_ttl: float, batch: int, now: datetime | None = None
) -> ReconcileReport:
    """One periodic pass: restore rows missing from Redis, drop orphans, follow paused flags."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=grace)
    report = ReconcileReport()
    restore_rows(broker, cutoff=cutoff, lease_ttl=lease_ttl, batch=batch, report=report)
    _log_restored(report, "restored jobs missing from Redis")
    for queue in sorted(broker.queue_names() | set(report.restored)):
        drop_orphans(broker, queue, cutoff=cutoff, now=now, batch=batch, report=report)
    sync_paused(broker, cutoff=cutoff, report=report)
    return report
