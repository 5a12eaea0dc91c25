"""Small helpers shared by the tests: settings overrides and bounded waits."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from django.conf import settings
from django.test import override_settings

T = TypeVar("T")


@contextmanager
def override_zipline(**values: Any) -> Iterator[None]:
    """Run with some ZipLine settings changed (``settings.ZIPLINE`` is a frozen Config)."""
    config = settings.ZIPLINE
    changed = dataclasses.replace(config, values={**config.values, **values})
    with override_settings(ZIPLINE=changed):
        yield


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, message: str = "") -> T:
    """Poll ``predicate`` until it returns something truthy; fail with ``message`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or predicate}")
        time.sleep(interval)
