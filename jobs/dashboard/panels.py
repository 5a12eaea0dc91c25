"""What each part of the dashboard shows, gathered through :mod:`jobs.service` (statistics, heartbeats).

Kept apart from the views so that the full page and the fragments it refreshes build the same data. A
Redis outage does not blank the page: the database's counts are still shown, with the error.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db.models import QuerySet

from jobs import service, tally
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
        stats = service.system_stats()
    except service.BrokerUnavailable as exc:
        logger.warning("dashboard: Redis unavailable", extra={"error": str(exc)})
        return _overview_without_redis(str(exc))
    cards = []
    for entry in stats["queues"]:
        chart = charts.throughput(*service.throughput_series(entry["name"], CHART_MINUTES))
        card = _card(entry["name"], entry["counts"], entry["paused"], chart, entry["depth"])
        card["limits"] = limit_rows(entry["flow"])
        cards.append(card)
    return {
        "cards": cards,
        "totals": stats["counts"],
        "workers": stats["workers"],
        "hour": sum((card["chart"].counted for card in cards), Tally()),
        "redis_error": "",
        "redis_master": service.redis_master(),
    }


def _overview_without_redis(error: str) -> dict[str, Any]:
    counts = service.counts_by_queue()
    paused = dict(QueueState.objects.values_list("name", "paused"))
    totals = dict.fromkeys(service.STATUSES, 0)
    for per_queue in counts.values():
        for status, n in per_queue.items():
            totals[status] += n
    cards = [
        _card(name, counts.get(name, dict.fromkeys(service.STATUSES, 0)), paused.get(name, False), None, None)
        for name in sorted(set(counts) | set(paused))
    ]
    return {
        "cards": cards,
        "totals": totals,
        "workers": service.workers_summary([]),
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


LIMIT_LABELS = {
    "queue_concurrency": "Queue concurrency",
    "queue_rate": "Queue rate",
    "group_concurrency": "Each group's concurrency",
    "group_rate": "Each group's rate",
    "type_concurrency": "Concurrency of type",
    "type_rate": "Rate of type",
}


def limit_rows(flow: dict[str, Any]) -> list[dict[str, Any]]:
    """A queue's limits in force as the dashboard lists them: what, how much, running, held now."""
    rows = []
    for row in flow["limits"]:
        label = LIMIT_LABELS[row["limit"]] + (f" {row['type']}" if row["type"] else "")
        value = str(row["concurrency"]) if row["rate"] is None else f"{row['rate']} (burst {row['burst']})"
        rows.append({"kind": row["limit"], "label": label, "value": value, **row})
    return rows


def workers() -> dict[str, Any]:
    """Live workers (fresh heartbeats) with their busy slots."""
    try:
        found = service.live_workers()
    except service.BrokerUnavailable as exc:
        return {"workers": [], "totals": service.workers_summary([]), "redis_error": str(exc)}
    now = time.time()
    for worker in found:
        worker["seen_ago"] = formats.age(now - worker.get("heartbeat_at", now))
        worker["uptime"] = formats.age(now - worker.get("started_at", now))
        concurrency = worker.get("concurrency", 0)
        worker["busy_percent"] = round(100 * worker.get("busy", 0) / concurrency) if concurrency else 0
        worker["counted"] = tally.from_total(worker.get("processed", 0), worker.get("failed", 0))
    return {"workers": found, "totals": service.workers_summary(found), "redis_error": ""}


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
    if status in service.STATUSES:
        jobs = jobs.in_state(status)
    if queue:
        jobs = jobs.filter(queue=queue) if storable(queue) else jobs.none()
    return search.search(jobs, term)[:SEARCH_RESULTS]
