"""Heartbeat files that let a liveness probe see a long-running component still doing its work.

The worker supervisor and the scheduler call :func:`touch` from their main loops; ``python manage.py probe
workers|scheduler`` calls :func:`is_alive` (through :func:`problem`) in the same container, so both sides
see the same directory: ``JQS_STATE_DIR``, else the system's temporary directory (``/tmp``, an ``emptyDir``
or ``tmpfs`` where the root filesystem is read-only). Nothing here touches the database or Redis.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from pathlib import Path

STATE_DIR_ENV = "JQS_STATE_DIR"
COMPONENTS = ("workers", "scheduler")
DEFAULT_MAX_AGE = 60.0

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


def state_dir() -> Path:
    """The directory of the heartbeat files: ``JQS_STATE_DIR`` or the system's temporary directory."""
    return Path(os.environ.get(STATE_DIR_ENV) or tempfile.gettempdir())


def heartbeat_path(component: str) -> Path:
    """The heartbeat file of ``component`` (``workers``, ``scheduler``): ``zipline-<component>.alive``."""
    if not _NAME.fullmatch(component):
        raise ValueError(f"not a component name: {component!r}")
    return state_dir() / f"zipline-{component}.alive"


def touch(component: str) -> None:
    """Record that ``component`` is alive now: the current time, written atomically (temp file + rename)."""
    path = heartbeat_path(component)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(f"{time.time():.6f}\n")
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def last_beat(component: str) -> float | None:
    """The time (``time.time()``) of the last heartbeat of ``component``, or ``None`` if it never beat."""
    path = heartbeat_path(component)
    try:
        text = path.read_text(encoding="ascii").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError):
        text = ""
    try:
        return float(text)
    except ValueError:
        # Not written by touch(): fall back to the file's modification time.
        try:
            return path.stat().st_mtime
        except OSError:
            return None


def age(component: str, now: float | None = None) -> float | None:
    """Seconds since the last heartbeat of ``component`` (never negative), or ``None`` if it never beat."""
    beat = last_beat(component)
    if beat is None:
        return None
    return max(0.0, (time.time() if now is None else now) - beat)


def is_alive(component: str, max_age: float) -> bool:
    """Whether ``component`` has beaten within the last ``max_age`` seconds."""
    seconds = age(component)
    return seconds is not None and seconds <= max_age


def problem(component: str, max_age: float) -> str | None:
    """``None`` if ``component`` is alive, else one line saying why (``workers: no heartbeat for 75s``)."""
    seconds = age(component)
    if seconds is None:
        return f"{component}: never started (no heartbeat file {heartbeat_path(component)})"
    if seconds > max_age:
        return f"{component}: no heartbeat for {seconds:.0f}s"
    return None
