"""The throughput chart of a queue as plain numbers a template turns into inline SVG.

Drawn on the server from the workers' per-minute counters, so the page needs no chart library and
looks the same with JavaScript off. One bar per minute, oldest on the left: the completed attempts,
with the failed ones stacked on top (the two never overlap, see :mod:`jobs.tally`), so a bar's
height is the minute's total.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from jobs.tally import Tally

WIDTH = 600
HEIGHT = 80
GAP = 2


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    completed_y: float
    completed_height: float
    failed_y: float
    failed_height: float
    label: str


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    width: int
    height: int
    peak: int
    counted: Tally
    minutes: int

    @property
    def completed(self) -> int:
        return self.counted.completed

    @property
    def failed(self) -> int:
        return self.counted.failed

    @property
    def total(self) -> int:
        return self.counted.total

    @property
    def per_minute(self) -> float:
        return round(self.total / self.minutes, 1) if self.minutes else 0.0


def throughput(completed: list[int], failed: list[int], now: float | None = None) -> Chart:
    """Bars for per-minute ``completed`` and ``failed`` counts (oldest first, equal lengths)."""
    minutes = len(completed)
    per_minute = [Tally(c, f) for c, f in zip(completed, failed, strict=True)]
    peak = max([t.total for t in per_minute] or [0])
    scale = (HEIGHT - 2) / peak if peak else 0.0
    slot = WIDTH / minutes if minutes else WIDTH
    current = int((time.time() if now is None else now) // 60)
    bars = []
    for index, counted in enumerate(per_minute):
        completed_h, failed_h = counted.completed * scale, counted.failed * scale
        minute = datetime.fromtimestamp((current - minutes + 1 + index) * 60, tz=UTC).strftime("%H:%M")
        bars.append(
            Bar(
                x=round(index * slot + GAP / 2, 2),
                width=round(max(slot - GAP, 1.0), 2),
                completed_y=round(HEIGHT - completed_h, 2),
                completed_height=round(completed_h, 2),
                failed_y=round(HEIGHT - completed_h - failed_h, 2),
                failed_height=round(failed_h, 2),
                label=f"{minute} UTC: {counted.completed} completed, {counted.failed} failed",
            )
        )
    return Chart(bars, WIDTH, HEIGHT, peak, Tally(sum(completed), sum(failed)), minutes)
