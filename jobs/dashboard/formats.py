"""Short human forms of ids, counts, durations and ages, shared by the dashboard and the admin."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone


def short_id(job_id: Any) -> str:
    """The first eight hex digits of an id: enough to tell jobs apart on a page, and searchable."""
    return str(job_id)[:8]


def plural(n: int, word: str = "job") -> str:
    """``1 job``, ``3 jobs``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def seconds(value: float | None) -> str:
    """A run time: ``85 ms``, ``2.50 s``, ``3.2 min``; ``-`` when unknown."""
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.2f} s"
    return f"{value / 60:.1f} min"


def age(value: float) -> str:
    """``5s``, ``3m``, ``2h``, ``4d``: short enough for a narrow column."""
    whole = max(0, int(value))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole >= size:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def ago(moment: datetime | None) -> str:
    """How long ago ``moment`` was, as :func:`age`; ``-`` when unknown."""
    if moment is None:
        return "-"
    return age((timezone.now() - moment).total_seconds())


def first_line(text: str) -> str:
    """The first non-blank line of an error (``RuntimeError: boom``): enough for a list."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""
