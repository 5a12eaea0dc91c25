"""Builders for test data, and a test processor registered for the tests' own job types."""

from __future__ import annotations

from typing import Any

from jobs.registry import Context, registry, processor

if "test_noop" not in registry:

    @processor("test_noop")
    def noop(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
        return {"echo": payload}
