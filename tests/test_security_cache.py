"""Issue 19, item 10: the Redis cache stores JSON and never unpickles what it finds in Redis."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

from django.core.cache import cache
from django_redis import get_redis_connection


class _RunsCodeWhenUnpickled:
    """What an attacker with write access to Redis would plant: unpickling it creates a directory."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.marker),))


def test_cache_entries_are_stored_as_json() -> None:
    cache.set("zipline:test:json", {"default": {"pending": 3}}, 30)
    try:
        raw = get_redis_connection("default").get(cache.make_key("zipline:test:json"))
        assert raw == b'{"default": {"pending": 3}}'
        assert cache.get("zipline:test:json") == {"default": {"pending": 3}}
    finally:
        cache.delete("zipline:test:json")


def test_a_pickle_planted_in_the_cache_is_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    planted = pickle.dumps(_RunsCodeWhenUnpickled(marker))
    key = "zipline:counts:*"  # a key the API reads (jobs.queues counts on a large table)
    get_redis_connection("default").set(cache.make_key(key), planted, ex=30)
    try:
        assert cache.get(key) is None  # a miss: the API counts again and overwrites it
        assert not marker.exists(), "the cache unpickled a value planted in Redis"
    finally:
        cache.delete(key)
