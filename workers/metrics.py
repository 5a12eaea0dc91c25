"""The workers' Prometheus metrics, summed over every worker process of a host.

prometheus_client's multiprocess mode needs ``PROMETHEUS_MULTIPROC_DIR`` set before it is
imported; the supervisor sets it (see :func:`workers.metrics_server.prepare`) before forking, and
serves the merged view on ``JQS_METRICS_PORT``.
"""

from __future__ import annotations

import collections
from bisect import bisect_left
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge, Histogram

if TYPE_CHECKING:
    from jobs.tally import Tally

LABELS = ("queue", "type")

PROCESSED = Counter("job_queue_processed", "Attempts that completed or failed (jobs.tally's total).", LABELS)
FAILED = Counter(
    "job_queue_failed", "Attempts that failed (error, timeout, or lost with a dead worker process).", LABELS
)
DURATION = Histogram(
    "job_queue_duration_seconds",
    "How long attempts ran.",
    LABELS,
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
ACTIVE = Gauge("job_queue_active_jobs", "Jobs running now.", LABELS, multiprocess_mode="livesum")
STALE_WRITES = Counter("job_queue_stale_writes", "Finishes rejected because the attempt was no longer current.")
LEASES_LOST = Counter("job_queue_leases_lost", "Running jobs whose lease was taken from their worker.")
HELD_BACK = Counter(
    "job_queue_held_back",
    "Waiting jobs a claim set aside because of a limit (docs/flow-control.md), by queue and limit: a lane "
    "parked by a rate or waiting for a slot, or the claim stopped by the queue's own limit. The group label "
    "is empty unless JQS_METRICS_GROUP_LABELS is on.",
    ("queue", "limit", "group"),
)
WORKER_PROCESSES = Gauge(
    "job_queue_worker_processes", "Worker processes the supervisor is running.", multiprocess_mode="livesum"
)


class JobMetrics:
    """The labelled metrics of one (queue, type), looked up once: ``labels()`` costs more than ``inc()``."""

    def __init__(self, queue: str, job_type: str) -> None:
        self.active = ACTIVE.labels(queue, job_type)
        self.processed = PROCESSED.labels(queue, job_type)
        self.failed = FAILED.labels(queue, job_type)
        self.duration = DURATION.labels(queue, job_type)


_by_labels: dict[tuple[str, str], JobMetrics] = {}


def count(job_metrics: JobMetrics, counted: Tally) -> None:
    """Add attempts to the counters: ``processed`` is their total, ``failed`` the failed ones."""
    if counted.total:
        job_metrics.processed.inc(counted.total)
    if counted.failed:
        job_metrics.failed.inc(counted.failed)


def observe_all(histogram: Any, values: Sequence[float]) -> None:
    """``histogram.observe(v)`` for each of ``values``, in one write to the sum and one to each bucket
    touched, not two writes a value: each write of a multiprocess metric takes a lock, checks the
    process id and writes to its file. (prometheus_client's ``observe``, pinned in requirements.txt,
    counts a value in the first bucket whose bound it does not pass; ``tests/test_metrics.py`` checks
    the two agree.)"""
    if not values:
        return
    bounds = histogram._upper_bounds
    histogram._sum.inc(sum(values))
    for index, times in collections.Counter(bisect_left(bounds, value) for value in values).items():
        histogram._buckets[index].inc(times)


def for_job(queue: str, job_type: str) -> JobMetrics:
    found = _by_labels.get((queue, job_type))
    if found is None:
        found = _by_labels[(queue, job_type)] = JobMetrics(queue, job_type)
    return found


def count_held(queue: str, held: tuple[tuple[str, str], ...], group_labels: bool) -> None:
    """Count what one claim held back (:attr:`jobs.broker.items.Claim.held`): (limit kind, lane) pairs.
    A group's name is a label only for a group's limit and only when ``group_labels`` is on."""
    for kind, lane in held:
        group = lane.rpartition("\n")[2] if group_labels and kind.startswith("group_") else ""
        HELD_BACK.labels(queue, kind, group).inc()
