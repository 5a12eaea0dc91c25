"""Queues as operators see them: pause and resume, and the statistics of one queue or the whole system.

View-agnostic on purpose: every caller reaches these through :mod:`jobs.service` and renders the dicts. Counts
come from the database (the source of truth, one ``GROUP BY``), live numbers from Redis: depths of the
ready (every lane of a flow queue), delayed and leased sets and what the limits hold back
(:mod:`jobs.flow_report`, one script call per queue), the per-minute completed/failed counters the
workers keep, the workers' heartbeats. A Redis or database error propagates; the caller decides what to show.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.db.models import Count

from jobs import flow_report, queue_limits, tally
from jobs.admin_paginator import table_estimate
from jobs.broker import Broker, get_broker
from jobs.broker.heartbeat import live_workers
from jobs.broker.items import FlowStats
from jobs.models import Job, QueueState, Status
from jobs.tally import Tally
from jobs.validation import InvalidJob, is_queue_name

STATUSES: tuple[str, ...] = tuple(s.value for s in Status)
WINDOW_SECONDS = 60
#: Below this many jobs (the planner's estimate) counts by status are taken live on every call.
LIVE_COUNTS_BELOW = 100_000
#: Above it, how long one count serves every caller.
SHARED_COUNTS_SECONDS = 5


def _process_start() -> float:
    """When this process started (Linux: from /proc, so it is right even if we were imported late)."""
    try:
        with open("/proc/self/stat", encoding="ascii") as stat:
            ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat", encoding="ascii") as system:
            boot = next(int(line.split()[1]) for line in system if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


PROCESS_STARTED = _process_start()


def check_name(name: str) -> str:
    if not is_queue_name(name):
        raise InvalidJob("queue", f"{name!r} is not a queue name (1-64 of A-Z a-z 0-9 _ . : -)")
    return name


# -- pause and resume --------------------------------------------------------------------------------


def set_paused(name: str, paused: bool) -> dict[str, Any]:
    """Pause or resume ``name``: the row first (it survives a Redis loss), then the Redis flag."""
    check_name(name)
    with transaction.atomic():
        QueueState.objects.update_or_create(name=name, defaults={"paused": paused})
    get_broker().set_paused(name, paused)
    return queue_stats(name)


def pause(name: str) -> dict[str, Any]:
    """Stop workers claiming from ``name``; running jobs finish, submissions are still accepted."""
    return set_paused(name, True)


def resume(name: str) -> dict[str, Any]:
    return set_paused(name, False)


# -- statistics ----------------------------------------------------------------------------------------


def _zero_counts() -> dict[str, int]:
    return dict.fromkeys(STATUSES, 0)


def counts_by_queue(queue: str | None = None) -> dict[str, dict[str, int]]:
    """{queue: {status: n}}, every status present (zero-filled): live on a small table, shared on a large one.

    The GROUP BY reads every row of the queue (about 150 ms per million rows on two cores), and every
    open dashboard and every stats call asks for it. Past :data:`LIVE_COUNTS_BELOW` rows (the
    planner's estimate) the result is kept in the cache, in Redis, for :data:`SHARED_COUNTS_SECONDS`, so
    all API processes together count once per period however many look.
    """
    if (table_estimate(Job.objects.all()) or 0) < LIVE_COUNTS_BELOW:
        return _count_by_queue(queue)
    key = f"zipline:counts:{queue or '*'}"
    counts: dict[str, dict[str, int]] | None = cache.get(key)
    if counts is None:
        counts = _count_by_queue(queue)
        cache.set(key, counts, SHARED_COUNTS_SECONDS)
    return counts


def _count_by_queue(queue: str | None) -> dict[str, dict[str, int]]:
    rows = Job.objects.order_by()
    if queue is not None:
        rows = rows.filter(queue=queue)
    out: dict[str, dict[str, int]] = {}
    for row in rows.values("queue", "status").annotate(n=Count("id")):
        out.setdefault(row["queue"], _zero_counts())[row["status"]] = row["n"]
    return out


def _windowed(series: list[int], now: float) -> int:
    """Events in the last 60 s from two per-minute buckets [previous, current]: all of the current one,
    and the share of the previous one that still lies inside the window."""
    previous, current = series[-2], series[-1]
    elapsed = (now % 60) / 60
    return int(round(current + previous * (1 - elapsed)))


def last_minute(broker: Broker, queue: str) -> Tally:
    """Attempts of ``queue`` that completed and failed in the last 60 s (see :mod:`jobs.tally`)."""
    now = time.time()
    completed = _windowed(broker.counter_series(queue, tally.COMPLETED, 2), now)
    return Tally(completed, _windowed(broker.counter_series(queue, tally.FAILED, 2), now))


def _throughput(counted: Tally) -> dict[str, Any]:
    return {
        "window_seconds": WINDOW_SECONDS,
        "completed": counted.completed,
        "failed": counted.failed,
        "total": counted.total,
        "per_second": counted.per_second(WINDOW_SECONDS),
    }


def _rows() -> dict[str, QueueState]:
    return {row.name: row for row in QueueState.objects.all()}


def _queue_entry(
    broker: Broker, name: str, counts: dict[str, int], row: QueueState | None, stats: FlowStats
) -> dict[str, Any]:
    limits = queue_limits.resolve(row)
    return {
        "name": name,
        "paused": row.paused if row is not None else stats.paused,
        "counts": counts,
        "total": sum(counts.values()),
        "throughput": _throughput(last_minute(broker, name)),
        "depth": {"ready": stats.waiting, "delayed": stats.delayed, "leased": stats.leased},
        "flow": flow_report.report(limits, stats),
    }


def queue_stats(name: str) -> dict[str, Any]:
    """One queue: counts by status, throughput over the last minute, Redis depths (every lane of a
    flow queue), paused or not, and its limits with what they hold back now (:mod:`jobs.flow_report`).

    A queue nobody used yet is simply empty (queues are created by use).
    """
    check_name(name)
    counts = counts_by_queue(name).get(name, _zero_counts())
    row = QueueState.objects.filter(name=name).first()
    broker = get_broker()
    return _queue_entry(broker, name, counts, row, broker.flow_stats([name])[name])


def workers_summary(workers: list[dict[str, Any]]) -> dict[str, Any]:
    concurrency = sum(w.get("concurrency", 0) for w in workers)
    busy = sum(w.get("busy", 0) for w in workers)
    return {
        "count": len(workers),
        "busy": busy,
        "concurrency": concurrency,
        "utilization": round(busy / concurrency, 3) if concurrency else 0.0,
        "processed": sum(w.get("processed", 0) for w in workers),
        "failed": sum(w.get("failed", 0) for w in workers),
    }


def worker_stats() -> dict[str, Any]:
    """Every live worker (by its heartbeat) and the totals over them."""
    workers = live_workers(get_broker())
    return {"workers": [_worker_entry(w) for w in workers], "totals": workers_summary(workers)}


def _iso(timestamp: float) -> str | None:
    if not timestamp:
        return None
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat().replace("+00:00", "Z")


def _worker_entry(worker: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": worker.get("id", ""),
        "hostname": worker.get("hostname", ""),
        "pid": worker.get("pid", 0),
        "queues": worker.get("queues", []),
        "concurrency": worker.get("concurrency", 0),
        "busy": worker.get("busy", 0),
        "processed": worker.get("processed", 0),
        "failed": worker.get("failed", 0),
        "started_at": _iso(worker.get("started_at", 0.0)),
        "heartbeat_at": _iso(worker.get("heartbeat_at", 0.0)),
    }


def uptime() -> dict[str, Any]:
    return {"started_at": _iso(PROCESS_STARTED), "uptime_seconds": round(max(0.0, time.time() - PROCESS_STARTED), 3)}


def system_stats() -> dict[str, Any]:
    """The whole system: totals, a per-queue breakdown, the workers, this process's uptime."""
    from zipline_site import __version__

    broker = get_broker()
    by_queue = counts_by_queue()
    rows = _rows()
    names = sorted(set(by_queue) | set(rows) | {q for q in broker.queue_names() if is_queue_name(q)})
    stats = broker.flow_stats(names)  # every queue in one round trip
    queues = [
        _queue_entry(broker, name, by_queue.get(name, _zero_counts()), rows.get(name), stats[name]) for name in names
    ]
    totals = _zero_counts()
    for counts in by_queue.values():
        for status, n in counts.items():
            totals[status] += n
    return {
        "counts": totals,
        "total": sum(totals.values()),
        "throughput": _throughput(
            Tally(sum(q["throughput"]["completed"] for q in queues), sum(q["throughput"]["failed"] for q in queues))
        ),
        "queues": queues,
        "workers": workers_summary(live_workers(broker)),
        **uptime(),
        "version": __version__,
    }
