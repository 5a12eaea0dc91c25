"""Values read from the settings once, and again after the settings change.

Each read of ``settings.ZIPLINE`` goes through Django's lazy settings object: about 3 µs, most of it an
``AttributeError`` raised and caught inside ``LazyObject.__getattribute__``. That is nothing for a
request, but a batch of 1,000 jobs that reads a limit per job pays it 1,000 times.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.signals import setting_changed

T = TypeVar("T")

_remembered: list[Callable[[], Any]] = []


def read_once(read: Callable[[], T]) -> Callable[[], T]:
    """``read`` (a function of the settings), called once and remembered until a setting changes
    (``override_settings`` and ``setting_changed``, as in tests)."""
    cached = functools.cache(read)
    _remembered.append(cached)
    return cached


def _forget(**_: Any) -> None:
    for cached in _remembered:
        cached.cache_clear()  # type: ignore[attr-defined]


setting_changed.connect(_forget)
