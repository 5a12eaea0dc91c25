"""Loads the Lua scripts in ``jobs/broker/lua``: each file is one multi-key step, run atomically in Redis.

``--- @include name`` lines pull in ``lua/includes/name.lua`` (each at most once), so shared helpers
live in one place. redis-py's :class:`~redis.commands.core.Script` calls a script by its SHA and
loads it again on ``NOSCRIPT``, so a ``SCRIPT FLUSH`` or a Redis restart costs one extra round trip.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

LUA_DIR = Path(__file__).with_name("lua")  # jobs/broker/lua
_INCLUDE = re.compile(r"^--- @include (\w+)\s*$", re.MULTILINE)


class ScriptError(Exception):
    """A Lua file names an include that does not exist, or includes in a cycle."""


def expand(source: str, seen: frozenset[str] = frozenset(), done: set[str] | None = None) -> str:
    """Replace each ``--- @include name`` with the include's text, recursively, once per script."""
    done = set() if done is None else done

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in seen:
            raise ScriptError(f"include cycle through {name!r}")
        if name in done:
            return ""
        path = LUA_DIR / "includes" / f"{name}.lua"
        if not path.is_file():
            raise ScriptError(f"missing include {name!r}")
        done.add(name)
        return expand(path.read_text(encoding="utf-8"), seen | {name}, done)

    return _INCLUDE.sub(replace, source)


@cache
def source(name: str) -> str:
    """The expanded source of ``lua/<name>.lua``."""
    return expand((LUA_DIR / f"{name}.lua").read_text(encoding="utf-8"))


SCRIPT_NAMES = tuple(sorted(p.stem for p in LUA_DIR.glob("*.lua")))
