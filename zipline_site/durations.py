"""Go-style duration strings (``250ms``, ``5s``, ``1h30m``), the one format ZipLine accepts for durations."""

from __future__ import annotations

import math
import re

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", re.ASCII)


# The longest duration ZipLine takes anywhere (settings, timeouts, delays): longer ones overflow the
# clocks, timeouts and dates they feed.
MAX_DURATION = 10 * 365 * 86400.0


class DurationError(ValueError):
    """A string that is not a Go-style duration."""


def parse_duration(text: str | int | float) -> float:
    """Return the duration in seconds. Numbers are taken as seconds; ``"0"`` is zero.

    Negative durations are refused: nothing in ZipLine waits a negative time.
    """
    if isinstance(text, bool):
        raise DurationError(f"not a duration: {text!r}")
    if isinstance(text, (int, float)):
        try:
            seconds = float(text)
        except OverflowError:
            raise DurationError("out of range: the number is too large for a duration") from None
        if seconds < 0:
            raise DurationError(f"negative duration: {text!r}")
        if not math.isfinite(seconds):
            raise DurationError(f"out of range: {text!r}")
        return seconds
    if not isinstance(text, str):
        raise DurationError(f"not a duration: {text!r}")
    value = text.strip()
    if value == "0":
        return 0.0
    if not value:
        raise DurationError("empty duration")
    position, total = 0, 0.0
    for match in _PART.finditer(value):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(value) or position == 0:
        raise DurationError(f"not a duration: {text!r} (use e.g. 250ms, 5s, 1h30m)")
    if not math.isfinite(total):
        raise DurationError(f"out of range: {text!r}")
    return total


def format_duration(seconds: float) -> str:
    """The shortest Go-style string for ``seconds`` (``90`` -> ``1m30s``)."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{round(seconds * 1000, 3):g}ms"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    frac = seconds - whole
    parts = []
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    if secs or frac or not parts:
        parts.append(f"{secs + frac:g}s")
    return "".join(parts)
