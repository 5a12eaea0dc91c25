"""What each part of the dashboard shows, gathered from :mod:`jobs.queues`, the broker and the heartbeats.

Kept apart from the views so that the full page and the fragments it refreshes build the same data. A
Redis outage does not blank the page: the database's counts are still shown, with the error.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db.models import QuerySet

from jobs import queues, tally
from jobs.broker import Broker, BrokerUnavailable, get_broker
from jobs.broker.heartbeat import live_workers
from jobs.dashboard import charts, formats, search
from jobs.models import Job, QueueState, Status
from jobs.tally import Tally
from jobs.validation import storable

logger = logging.getLogger("zipline.dashboard")

CHART_MINUTES = 60
FAILURES_SHOWN = 10
SEARCH_RESULTS = 50
#: The counts a queue card shows, in order (completed and cancelled are history, not work).
CARD_COUNTS = (Status.PENDING, Status.SCHEDULED, Status.RUNNING, Status.RETRYING, Status.FAILED)


def overview() -> dict[str, Any]:
    """Totals and one card per queue: counts, paused or not, depths and the last hour's throughput."""
    try:
        stats = queues.system_stats()
    except BrokerUnavailable as exc:
        logger.warning("dashboard: Redis unavailable", extra={"error": str(exc)})
        return _overview_without_redis(str(exc))
    broker = get_broker()
    cards = []
    for entry in stats["queues"]:
        chart = charts.throughput(
            broker.counter_series(entry["name"], tally.COMPLETED, CHART_MINUTES),
            broker.counter_series(entry["name"], tally.FAILED, CHART_MINUTES),
        )
        cards.append(_card(entry["name"], entry["counts"], entry["paused"], chart, entry["depth"]))
    return {
        "cards": cards,
        "totals": stats["counts"],
        "workers": stats["workers"],
        "hour": sum((card["chart"].counted for card in cards), Tally()),
        "redis_error": "",
        "redis_master": _master(broker),
    }


def _master(broker: Broker) -> str | None:
    """The master in use when the sentinels choose it (None for a single Redis, or when they do not answer)."""
    try:
        return broker.master_address()
    except BrokerUnavailable:
        return None


def _overview_without_redis(error: str) -> dict[str, Any]:
    counts = queues.counts_by_queue()
    paused = dict(QueueState.objects.values_list("name", "paused"))
    totals = dict.fromkeys(queues.STATUSES, 0)
    for per_queue in counts.values():
        for status, n in per_queue.items():
            totals[status] += n
    cards = [
        _card(name, counts.get(name, dict.fromkeys(queues.STATUSES, 0)), paused.get(name, False), None, None)
        for name in sorted(set(counts) | set(paused))
    ]
    return {
        "cards": cards,
        "totals": totals,
        "workers": queues.workers_summary([]),
        "hour": None,
        "redis_error": error,
    }


def _card(
    name: str, counts: dict[str, int], paused: bool, chart: charts.Chart | None, depth: dict[str, int] | None
) -> dict[str, Any]:
    return {
        "name": name,
        "paused": paused,
        "counts": [(status.value, counts.get(status, 0)) for status in CARD_COUNTS],
        "completed": counts.get(Status.COMPLETED, 0),
        "chart": chart,
        "depth": depth,
    }


def workers() -> dict[str, Any]:
    """Live workers (fresh heartbeats) with their busy slots."""
    try:
        found = live_workers(get_broker())
    except BrokerUnavailable as exc:
        return {"workers": [], "totals": queues.workers_summary([]), "redis_error": str(exc)}
    now = time.time()
    for worker in found:
        worker["seen_ago"] = formats.age(now - worker.get("heartbeat_at", now))
        worker["uptime"] = formats.age(now - worker.get("started_at", now))
        concurrency = worker.get("concurrency", 0)
        worker["busy_percent"] = round(100 * worker.get("busy", 0) / concurrency) if concurrency else 0
        worker["counted"] = tally.from_total(worker.get("processed", 0), worker.get("failed", 0))
    return {"workers": found, "totals": queues.workers_summary(found), "redis_error": ""}


def failures(limit: int = FAILURES_SHOWN) -> list[Job]:
    """The latest failed jobs and the latest retrying ones (an attempt failed, another is due), newest first.

    Two index-backed queries (status + completed_at, status + created_at) instead of one sort over every
    failed job.
    """
    light = ("payload", "result", "traceback")
    failed = list(Job.objects.in_state(Status.FAILED).defer(*light).order_by("-completed_at")[:limit])
    retrying = list(Job.objects.in_state(Status.RETRYING).defer(*light).order_by("-created_at")[:limit])
    both = failed + retrying
    both.sort(key=lambda job: job.completed_at or job.updated_at, reverse=True)
    for job in both:
        job.error_line = formats.first_line(job.error)  # type: ignore[attr-defined]
        job.failed_ago = formats.ago(job.completed_at or job.updated_at)  # type: ignore[attr-defined]
    return both[:limit]


def find(term: str, status: str = "", queue: str = "") -> QuerySet[Job]:
    """The newest jobs matching a search term (id, id prefix or name), status and queue."""
    jobs = Job.objects.defer("payload", "result", "traceback").order_by("-created_at")
    if status in queues.STATUSES:
        jobs = jobs.in_state(status)
    if queue:
        jobs = jobs.filter(queue=queue) if storable(queue) else jobs.none()
    return search.search(jobs, term)[:SEARCH_RESULTS]
