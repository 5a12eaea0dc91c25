"""Summarise a py-spy ``--format raw`` profile of ``runworkers``: one worker process's samples, as the
functions (and the packages) that held the CPU themselves ("self" time: the innermost frame).

py-spy's raw format is one line per distinct stack, ``frame;frame;...;frame COUNT``; with
``--subprocesses`` each stack starts with a ``process PID:"command line"`` frame per process level,
so a worker's stacks carry two: the supervisor's, then the worker's own.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
_PROCESS = re.compile(r"^process (?P<pid>\d+):")


@dataclass
class Profile:
    """Samples of one process: by function and by package, innermost frame only."""

    pid: int
    samples: int = 0
    functions: Counter[str] = field(default_factory=Counter)
    packages: Counter[str] = field(default_factory=Counter)


def _package(path: str) -> str:
    """``django``, ``psycopg``, ``jobs``, ``logging`` ...: the top-level package of a frame's code.

    py-spy shortens paths to the part below ``sys.path``'s entry (``redis/connection.py``), so the
    first component is the package, whether it comes from the standard library, the venv or the project.
    """
    if path.startswith("<"):
        return path  # <frozen importlib._bootstrap> and the like
    return path.lstrip("/").split("/", 1)[0].removesuffix(".py")


def _split(line: str) -> tuple[list[int], str, int] | None:
    """(pids of the process frames, innermost frame, samples) of one raw line."""
    stack, _, count = line.rstrip("\n").rpartition(" ")
    if not stack or not count.isdigit():
        return None
    frames = stack.split(";")
    pids = [int(m["pid"]) for f in frames if (m := _PROCESS.match(f))]
    return pids, frames[-1], int(count)


def worker_profiles(raw: str) -> list[Profile]:
    """One profile per worker process (stacks two process levels deep), the busiest first."""
    by_pid: dict[int, Profile] = {}
    for line in raw.splitlines():
        parsed = _split(line)
        if parsed is None or len(parsed[0]) < 2:
            continue
        pids, innermost, count = parsed
        if _PROCESS.match(innermost):
            continue  # a sample without a Python frame
        profile = by_pid.setdefault(pids[1], Profile(pids[1]))
        profile.samples += count
        match = _FRAME.match(innermost)
        func, file = (match["func"], match["file"]) if match else (innermost, "?")
        profile.functions[f"{func} ({file})"] += count
        profile.packages[_package(file)] += count
    return sorted(by_pid.values(), key=lambda p: p.samples, reverse=True)


def summary(profile: Profile, top: int = 25) -> list[str]:
    """Lines: the top functions and packages by self samples, with their share of the worker's samples."""
    lines = [f"py-spy: worker process {profile.pid}, {profile.samples:,} samples (CPU only, idle threads left out)"]
    lines.append("  by package (self):")
    for name, count in profile.packages.most_common(12):
        lines.append(f"    {count / profile.samples:6.1%}  {name}")
    lines.append(f"  top {top} functions (self):")
    for name, count in profile.functions.most_common(top):
        lines.append(f"    {count / profile.samples:6.1%}  {name}")
    return lines
