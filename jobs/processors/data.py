"""The ``process_data`` job: CPU work on generated data, for load tests and demonstrations.

The data is ``data_size`` integers drawn as ``random.Random(seed).randrange(VALUE_RANGE)``, one after the
other, so a test can regenerate them and check the result on its own. Work runs in chunks of
:data:`CHUNK` items with ``ctx.check()`` between them, so a cancelled or timed-out job stops promptly.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from jobs.registry import Context, PayloadError

if TYPE_CHECKING:
    from jobs.models import Job

OPERATIONS = ("transform", "aggregate", "sort", "filter")
MAX_DATA_SIZE = 10_000_000
VALUE_RANGE = 1_000_000
CHUNK = 10_000
SAMPLE = 10
# Above this many items ``sort`` counts occurrences of each value instead of sorting a list: the same
# result in a fixed ~8 MB instead of ~36 bytes per item.
LIST_SORT_LIMIT = 1_000_000


def parse_payload(payload: Any) -> tuple[int, str, int]:
    """Validate a ``process_data`` payload into (data_size, operation, seed); bad ones raise PayloadError."""
    if not isinstance(payload, Mapping):
        raise PayloadError("", "expected an object with data_size and operation")
    size = payload.get("data_size")
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_DATA_SIZE:
        raise PayloadError("data_size", f"expected a whole number from 1 to {MAX_DATA_SIZE}, not {size!r}")
    operation = payload.get("operation")
    if operation not in OPERATIONS:
        raise PayloadError("operation", f"expected one of {', '.join(OPERATIONS)}, not {operation!r}")
    seed = payload.get("seed", 0)
    if seed is None:
        seed = 0
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise PayloadError("seed", f"expected a whole number, not {seed!r}")
    return size, operation, seed


def generate(size: int, seed: int, ctx: Context) -> Iterator[list[int]]:
    """The data, in chunks of at most :data:`CHUNK` values; checks for cancellation before each."""
    draw = random.Random(seed).randrange
    for start in range(0, size, CHUNK):
        ctx.check()
        yield [draw(VALUE_RANGE) for _ in range(min(CHUNK, size - start))]


def transform(size: int, seed: int, ctx: Context) -> dict[str, Any]:
    """Map every x to x*2+1; the checksum is the SHA-256 of the results joined by commas."""
    digest = hashlib.sha256()
    count = total = 0
    for chunk in generate(size, seed, ctx):
        values = [x * 2 + 1 for x in chunk]
        digest.update((b"," if count else b"") + ",".join(map(str, values)).encode("ascii"))
        count += len(values)
        total += sum(values)
    return {"operation": "transform", "count": count, "sum": total, "checksum": digest.hexdigest()}


def aggregate(size: int, seed: int, ctx: Context) -> dict[str, Any]:
    count = total = 0
    low, high = VALUE_RANGE, -1
    for chunk in generate(size, seed, ctx):
        count += len(chunk)
        total += sum(chunk)
        low, high = min(low, min(chunk)), max(high, max(chunk))
    return {"operation": "aggregate", "count": count, "sum": total, "min": low, "max": high, "mean": total / count}


def _is_sorted(values: list[int], ctx: Context) -> bool:
    for start in range(0, len(values) - 1, CHUNK):
        ctx.check()
        end = min(start + CHUNK, len(values) - 1)
        if any(values[i] > values[i + 1] for i in range(start, end)):
            return False
    return True


def sort(size: int, seed: int, ctx: Context) -> dict[str, Any]:
    """Sort the data and verify the order; reports the smallest and largest values."""
    if size <= LIST_SORT_LIMIT:
        values = [x for chunk in generate(size, seed, ctx) for x in chunk]
        ctx.check()
        values.sort()
        ordered = _is_sorted(values, ctx)
        first, last = values[:SAMPLE], values[-SAMPLE:]
    else:
        counts = [0] * VALUE_RANGE
        for chunk in generate(size, seed, ctx):
            for x in chunk:
                counts[x] += 1
        first, last = [], []
        ordered, previous, seen = True, -1, 0
        for start in range(0, VALUE_RANGE, CHUNK):
            ctx.check()
            for value in range(start, start + CHUNK):
                count = counts[value]
                if not count:
                    continue
                ordered = ordered and value >= previous
                previous = value
                if len(first) < SAMPLE:
                    first.extend([value] * min(count, SAMPLE - len(first)))
                seen += count
                if seen > size - SAMPLE:
                    last.extend([value] * min(count, seen - (size - SAMPLE)))
        ordered = ordered and seen == size
    return {"operation": "sort", "count": size, "first": first, "last": last, "is_sorted": ordered}


def filter_even(size: int, seed: int, ctx: Context) -> dict[str, Any]:
    """Keep the even values; ``count`` is how many were kept, ``sum`` their sum."""
    kept = total = 0
    for chunk in generate(size, seed, ctx):
        evens = [x for x in chunk if x % 2 == 0]
        kept += len(evens)
        total += sum(evens)
    return {"operation": "filter", "input_count": size, "count": kept, "sum": total}


_OPERATIONS: dict[str, Callable[[int, int, Context], dict[str, Any]]] = {
    "transform": transform,
    "aggregate": aggregate,
    "sort": sort,
    "filter": filter_even,
}


class ProcessDataProcessor:
    """Runs ``process_data`` jobs. The work is deterministic, so only cancellation can stop it midway."""

    name = "process_data"

    def can_process(self, job_type: str) -> bool:
        return job_type == self.name

    def validate_payload(self, payload: dict[str, Any]) -> None:
        parse_payload(payload)

    def process(self, job: Job, ctx: Context) -> dict[str, Any]:
        size, operation, seed = parse_payload(job.payload)
        result = _OPERATIONS[operation](size, seed, ctx)
        ctx.logger.info("process_data %s of %d items done", operation, size)
        return result
