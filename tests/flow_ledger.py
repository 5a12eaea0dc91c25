"""Reading the ledger the test processors write (tests/procapp/processors.py): when each job of each
group (the payload's ``tag``) started and ended, and how many ran at once."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any


@dataclass
class Run:
    job_id: str
    tag: str
    start: float
    end: float | None = None


def runs(broker: Any, key: str) -> list[Run]:
    """Each attempt in the ledger at ``key`` (the last start of a job wins)."""
    out: dict[tuple[str, str], Run] = {}
    for raw in broker.client.lrange(key, 0, -1):
        job_id, attempt, _pid, event, at, tag = raw.decode().split("|", 5)
        if event == "start":
            out[(job_id, attempt)] = Run(job_id, tag, float(at))
        elif event == "end" and (job_id, attempt) in out:
            out[(job_id, attempt)].end = float(at)
    return list(out.values())


def most_at_once(items: list[Run]) -> int:
    """The most runs whose [start, end] intervals overlap at one instant (an unended run never ends)."""
    events = sorted([(r.start, 1) for r in items] + [(r.end, -1) for r in items if r.end is not None])
    now = peak = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


def most_at_once_per_tag(items: list[Run]) -> dict[str, int]:
    by_tag: dict[str, list[Run]] = defaultdict(list)
    for r in items:
        by_tag[r.tag].append(r)
    return {tag: most_at_once(group) for tag, group in by_tag.items()}


def busiest_second(starts: list[float]) -> int:
    """The most starts in any one-second window (sliding, over every start)."""
    ordered = sorted(starts)
    best, left = 0, 0
    for right, at in enumerate(ordered):
        while at - ordered[left] >= 1.0:
            left += 1
        best = max(best, right - left + 1)
    return best
