"""What a queue's limits hold back now, as operators see it: each limit in force, the jobs running
against it and the jobs it holds, from one read of the broker (:class:`~jobs.broker.items.FlowStats`).

The API's queue statistics, the dashboard's queue cards, the admin and the workers' metrics all show
this one shape (docs/flow-control.md, "Seeing the limits").

How a held job is counted: a lane waiting for a group's (or a type's) concurrency slot holds its jobs
under that concurrency; a lane parked by a rate holds them under its group's rate when the queue has
one, else under its type's; when the queue's own concurrency is full (or, failing that, its rate
allows no start now) the jobs of the lanes taking turns are held by it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from jobs.broker.items import FlowStats
from jobs.limits import Rate, TypeLimits, effective_burst, lane_parts, type_limits
from jobs.queue_limits import QueueLimits

KINDS = ("queue_concurrency", "queue_rate", "group_concurrency", "group_rate", "type_concurrency", "type_rate")
CATCH_UP_MS = 5  # as includes/gcra.lua


def rate_allows_now(rate: Rate, burst: int | None, tat_ms: float | None, now_ms: int) -> bool:
    """Whether a GCRA bucket at ``tat_ms`` lets a job start at ``now_ms`` (includes/gcra.lua's rate_wait)."""
    if tat_ms is None:
        return True
    interval = rate.interval_ms
    tat = max(tat_ms, now_ms - min(interval / 2, CATCH_UP_MS))
    return tat + interval - effective_burst(rate, burst) * interval - now_ms <= 0


def _row(kind: str, job_type: str | None = None, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"limit": kind, "type": job_type, "concurrency": None, "rate": None, "burst": None}
    row.update({"running": None, "held_jobs": 0, **values})
    return row


def _held(limits: QueueLimits, stats: FlowStats) -> dict[tuple[str, str], int]:
    """Jobs held, by (limit kind, type or "")."""
    held: dict[tuple[str, str], int] = defaultdict(int)
    for slot, _lanes, jobs in stats.blocked:
        kind, name = slot[:1], slot[2:]
        held[("group_concurrency", "") if kind == "g" else ("type_concurrency", name)] += jobs
    for lane_name, jobs in stats.parked:
        group, job_type = lane_parts(lane_name)
        by_group = bool(group) and (limits.group_rate is not None or not job_type)
        held[("group_rate", "") if by_group else ("type_rate", job_type)] += jobs
    if limits.concurrency is not None and stats.queue_running >= limits.concurrency:
        held[("queue_concurrency", "")] += stats.in_turn
    elif limits.rate is not None and not rate_allows_now(limits.rate, limits.burst, stats.queue_tat_ms, stats.now_ms):
        held[("queue_rate", "")] += stats.in_turn
    return held


def _running(stats: FlowStats) -> tuple[dict[str, int], dict[str, int]]:
    """Running jobs by group and by type (of the leases read)."""
    groups: dict[str, int] = defaultdict(int)
    types: dict[str, int] = defaultdict(int)
    for lane_name, n in stats.running:
        group, job_type = lane_parts(lane_name)
        if group:
            groups[group] += n
        if job_type:
            types[job_type] += n
    return groups, types


def _type_rows(stats: FlowStats, held: dict[tuple[str, str], int], running: dict[str, int]) -> list[dict[str, Any]]:
    """The limits of the job types this queue holds in lanes or runs now."""
    seen = {lane_parts(lane)[1] for lane, _ in stats.parked} | {
        slot[2:] for slot, _, _ in stats.blocked if slot[0] == "t"
    }
    rows = []
    for job_type in sorted((seen | running.keys()) - {""}):
        found: TypeLimits | None = type_limits(job_type)
        if found is None:
            continue
        if found.concurrency is not None:
            rows.append(
                _row(
                    "type_concurrency",
                    job_type,
                    concurrency=found.concurrency,
                    running=running.get(job_type, 0),
                    held_jobs=held.get(("type_concurrency", job_type), 0),
                )
            )
        if found.rate is not None:
            rows.append(
                _row(
                    "type_rate",
                    job_type,
                    rate=str(found.rate),
                    burst=effective_burst(found.rate, found.burst),
                    held_jobs=held.get(("type_rate", job_type), 0),
                )
            )
    return rows


def _rate_row(kind: str, rate: Rate, burst: int | None, held: dict[tuple[str, str], int]) -> dict[str, Any]:
    return _row(kind, rate=str(rate), burst=effective_burst(rate, burst), held_jobs=held[(kind, "")])


def _concurrency_row(kind: str, concurrency: int, running: int, held: dict[tuple[str, str], int]) -> dict[str, Any]:
    return _row(kind, concurrency=concurrency, running=running, held_jobs=held[(kind, "")])


def limit_rows(limits: QueueLimits, stats: FlowStats, held: dict[tuple[str, str], int]) -> list[dict[str, Any]]:
    """Each limit in force on the queue, with the jobs running against it and those it holds."""
    groups, types = _running(stats)
    rows = []
    if limits.concurrency is not None:
        rows.append(_concurrency_row("queue_concurrency", limits.concurrency, stats.queue_running, held))
    if limits.rate is not None:
        rows.append(_rate_row("queue_rate", limits.rate, limits.burst, held))
    if limits.group_concurrency is not None:
        rows.append(_concurrency_row("group_concurrency", limits.group_concurrency, sum(groups.values()), held))
    if limits.group_rate is not None:
        rows.append(_rate_row("group_rate", limits.group_rate, limits.group_burst, held))
    return rows + _type_rows(stats, held, types)


def report(limits: QueueLimits, stats: FlowStats) -> dict[str, Any]:
    """The ``flow`` part of a queue's statistics."""
    held = _held(limits, stats)
    return {
        "running": stats.queue_running,
        "lanes": stats.lanes,
        "lanes_waiting_for_a_slot": sum(lanes for _, lanes, _ in stats.blocked),
        "lanes_waiting_for_a_rate": len(stats.parked),
        "held_jobs": sum(held.values()),
        "limits": limit_rows(limits, stats, held),
        "counted_every_lane": not stats.cut_short,
    }
