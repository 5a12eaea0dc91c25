"""A process's CPU time and resident memory, read from ``/proc`` (Linux): for ``bench/startup_memory.py``."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

KIB = 1024
MIB = 2**20


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far (its children's not included)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


THREAD_STACK = 8 * MIB  # glibc's default thread stack (RLIMIT_STACK), one anonymous mapping per thread


def _mapping_name(header: list[str], size: int) -> str:
    """A mapping's group: a file's base name, ``[heap]``, thread stacks, or anonymous memory."""
    path = header[5] if len(header) > 5 else ""
    if path.startswith("/"):
        return Path(path).name
    if path:
        return path
    return "[thread stacks]" if size in (THREAD_STACK, THREAD_STACK + 4096) else "[anon]"


def smaps_groups(pid: int) -> dict[str, dict[str, int]]:
    """A process's resident memory by mapping group (see :func:`_mapping_name`): Rss, Pss, Private."""
    groups: dict[str, Counter[str]] = {}
    current: Counter[str] = Counter()
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head, _, rest = line.partition(" ")
        if "-" in head and not head.endswith(":"):
            start, end = (int(bound, 16) for bound in head.split("-"))
            current = groups.setdefault(_mapping_name(line.split(), end - start), Counter())
        elif head in ("Rss:", "Pss:", "Private_Clean:", "Private_Dirty:"):
            key = "Private" if head.startswith("Private") else head[:-1]
            current[key] += int(rest.split()[0]) * KIB
    return {name: dict(values) for name, values in groups.items()}


def rollup(pid: int) -> dict[str, int]:
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        values[key] = int(rest.split()[0]) * KIB
    return values


def top_mappings(groups: dict[str, dict[str, int]], top: int = 12) -> list[dict[str, Any]]:
    ranked = sorted(groups.items(), key=lambda item: -item[1].get("Rss", 0))[:top]
    return [
        {"mapping": name, **{key: round(value / MIB, 2) for key, value in sorted(values.items())}}
        for name, values in ranked
    ]
