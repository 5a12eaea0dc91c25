"""The process_data processor: each operation checked against an independent computation."""

from __future__ import annotations

import hashlib
import random
import time
from typing import Any

import pytest

from jobs.processors import data
from jobs.processors.data import ProcessDataProcessor
from jobs.registry import Context, JobCancelled, PermanentError, registry
from tests.helpers import make_context, run_processor


def make_ctx() -> Context:
    return make_context()


def run(payload: Any, ctx: Context | None = None) -> dict[str, Any]:
    return run_processor(ProcessDataProcessor(), payload, ctx)


def values(size: int, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(1_000_000) for _ in range(size)]


@pytest.mark.parametrize(("size", "seed"), [(1, 0), (25_000, 0), (10_001, 7)])
def test_transform(size: int, seed: int) -> None:
    expected = [x * 2 + 1 for x in values(size, seed)]
    result = run({"data_size": size, "operation": "transform", "seed": seed})
    assert result == {
        "operation": "transform",
        "count": size,
        "sum": sum(expected),
        "checksum": hashlib.sha256(",".join(map(str, expected)).encode()).hexdigest(),
    }


def test_aggregate() -> None:
    numbers = values(30_000, 3)
    result = run({"data_size": 30_000, "operation": "aggregate", "seed": 3})
    assert result == {
        "operation": "aggregate",
        "count": 30_000,
        "sum": sum(numbers),
        "min": min(numbers),
        "max": max(numbers),
        "mean": pytest.approx(sum(numbers) / 30_000),
    }


def test_default_seed_is_zero() -> None:
    assert run({"data_size": 100, "operation": "aggregate"}) == run(
        {"data_size": 100, "operation": "aggregate", "seed": 0}
    )
    assert run({"data_size": 100, "operation": "aggregate", "seed": 1})["sum"] != sum(values(100, 0))


@pytest.mark.parametrize("size", [1, 5, 12_345])
def test_sort(size: int) -> None:
    ordered = sorted(values(size, 11))
    result = run({"data_size": size, "operation": "sort", "seed": 11})
    assert result == {
        "operation": "sort",
        "count": size,
        "first": ordered[:10],
        "last": ordered[-10:],
        "is_sorted": True,
    }


def test_sort_by_counting_gives_the_same_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Large inputs are sorted by counting values; force that path on a small input."""
    ordered = sorted(values(20_000, 5))
    monkeypatch.setattr(data, "LIST_SORT_LIMIT", 100)
    result = run({"data_size": 20_000, "operation": "sort", "seed": 5})
    assert result == {
        "operation": "sort",
        "count": 20_000,
        "first": ordered[:10],
        "last": ordered[-10:],
        "is_sorted": True,
    }


def test_filter() -> None:
    evens = [x for x in values(22_222, 9) if x % 2 == 0]
    result = run({"data_size": 22_222, "operation": "filter", "seed": 9})
    assert result == {"operation": "filter", "input_count": 22_222, "count": len(evens), "sum": sum(evens)}


class CountingContext(Context):
    """Counts ``check()`` calls and cancels itself after ``limit`` of them."""

    limit = 1_000_000
    checks = 0

    def check(self) -> None:
        self.checks += 1
        if self.checks >= self.limit:
            self.cancel("cancelled by the test")
        super().check()


@pytest.mark.parametrize("operation", ["transform", "aggregate", "sort", "filter"])
def test_checks_for_cancellation_every_chunk(operation: str) -> None:
    ctx = CountingContext(job_id="x", attempt=1, deadline=time.monotonic() + 30)
    run({"data_size": 100_000, "operation": operation}, ctx)
    assert ctx.checks >= 10


@pytest.mark.parametrize("operation", ["transform", "aggregate", "sort", "filter"])
def test_cancellation_stops_midway(operation: str) -> None:
    ctx = CountingContext(job_id="x", attempt=1, deadline=time.monotonic() + 30)
    ctx.limit = 3
    with pytest.raises(JobCancelled, match="cancelled by the test"):
        run({"data_size": 1_000_000, "operation": operation}, ctx)
    assert ctx.checks == 3


def test_already_cancelled_job_does_no_work() -> None:
    ctx = make_ctx()
    ctx.cancel("stop")
    with pytest.raises(JobCancelled, match="stop"):
        run({"data_size": 10, "operation": "sort"}, ctx)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (None, "payload"),
        ({"operation": "sort"}, "data_size"),
        ({"data_size": 0, "operation": "sort"}, "data_size"),
        ({"data_size": 10_000_001, "operation": "sort"}, "data_size"),
        ({"data_size": "10", "operation": "sort"}, "data_size"),
        ({"data_size": 1.5, "operation": "sort"}, "data_size"),
        ({"data_size": True, "operation": "sort"}, "data_size"),
        ({"data_size": 10}, "operation"),
        ({"data_size": 10, "operation": "shuffle"}, "operation"),
        ({"data_size": 10, "operation": "sort", "seed": "1"}, "seed"),
        ({"data_size": 10, "operation": "sort", "seed": 1.0}, "seed"),
        ({"data_size": 10, "operation": "sort", "seed": False}, "seed"),
    ],
)
def test_bad_payload_is_a_permanent_error_naming_the_field(payload: Any, field: str) -> None:
    with pytest.raises(PermanentError) as info:
        run(payload)
    assert str(info.value).startswith(f"{field}:")


def test_registered_under_process_data() -> None:
    processor = registry.get("process_data")
    assert isinstance(processor, ProcessDataProcessor)
    assert processor.can_process("process_data") and not processor.can_process("webhook")
