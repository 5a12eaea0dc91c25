"""The throughput chart of a queue as plain numbers a template turns into inline SVG.

Drawn on the server from the workers' per-minute counters, so the page needs no chart library and
looks the same with JavaScript off. One bar per minute, oldest on the left; failures stack on top.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

WIDTH = 600
HEIGHT = 80
GAP = 2


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    done_y: float
    done_height: float
    failed_y: float
    failed_height: float
    label: str


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    width: int
    height: int
    peak: int
    done: int
    failed: int
    minutes: int

    @property
    def per_minute(self) -> float:
        return round((self.done + self.failed) / self.minutes, 1) if self.minutes else 0.0


def throughput(done: list[int], failed: list[int], now: float | None = None) -> Chart:
    """Bars for per-minute ``done`` and ``failed`` counts (oldest first, equal lengths)."""
    minutes = len(done)
    peak = max([d + f for d, f in zip(done, failed, strict=True)] or [0])
    scale = (HEIGHT - 2) / peak if peak else 0.0
    slot = WIDTH / minutes if minutes else WIDTH
    current = int((time.time() if now is None else now) // 60)
    bars = []
    for index, (d, f) in enumerate(zip(done, failed, strict=True)):
        done_h, failed_h = d * scale, f * scale
        minute = datetime.fromtimestamp((current - minutes + 1 + index) * 60, tz=UTC).strftime("%H:%M")
        bars.append(
            Bar(
                x=round(index * slot + GAP / 2, 2),
                width=round(max(slot - GAP, 1.0), 2),
                done_y=round(HEIGHT - done_h, 2),
                done_height=round(done_h, 2),
                failed_y=round(HEIGHT - done_h - failed_h, 2),
                failed_height=round(failed_h, 2),
                label=f"{minute} UTC: {d} done, {f} failed",
            )
        )
    return Chart(bars, WIDTH, HEIGHT, peak, sum(done), sum(failed), minutes)
