"""An attempt's result is kept bounded and JSON (F20); outages are logged once at each edge."""

from __future__ import annotations

import logging

import pytest

from jobs.outages import Outage
from workers.outcomes import MAX_RESULT_PREVIEW, bounded_result


def test_small_json_results_are_kept_as_they_are() -> None:
    assert bounded_result({"a": [1, 2]}, 1000) == {"a": [1, 2]}
    assert bounded_result("text", 1000) == "text"
    assert bounded_result({"path": "C:\\u0000"}, 1000) == {"path": "C:\\u0000"}  # a backslash, not a NUL


def test_a_large_result_becomes_a_flagged_preview() -> None:
    kept = bounded_result({"blob": "x" * 10_000}, 1000)
    assert kept["truncated"] is True and kept["size"] > 10_000 and len(kept["preview"]) == MAX_RESULT_PREVIEW


def test_a_result_that_is_not_json_is_flagged_not_lost() -> None:
    kept = bounded_result({1, 2}, 1000)  # a set: json.dumps(default=str) turns it into a string
    assert kept == "{1, 2}"
    cyclic: list[object] = []
    cyclic.append(cyclic)
    flagged = bounded_result(cyclic, 1000)
    assert flagged["truncated"] is True and "not JSON" in flagged["error"]


class _Broken:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def _nested(depth: int) -> list[object]:
    value: list[object] = []
    for _ in range(depth):
        value = [value]
    return value


def _circular() -> list[object]:
    value: list[object] = []
    value.append(value)
    return value


@pytest.mark.parametrize(
    ("result", "error"),
    [
        (_nested(100_000), "RecursionError"),
        ({"x": _Broken()}, "RuntimeError: no str"),
        (_circular(), "ValueError: Circular reference detected"),
    ],
)
def test_results_that_break_the_encoder_are_flagged_not_raised(result: object, error: str) -> None:
    """Whatever a processor returns, recording it must not raise: the recorder would die with it."""
    kept = bounded_result(result, 10_000)
    assert kept["truncated"] is True and kept["error"].startswith(f"result is not JSON: {error}"), kept
    assert len(kept["preview"]) <= MAX_RESULT_PREVIEW


def test_a_preview_of_an_object_whose_repr_fails_says_so() -> None:
    kept = bounded_result({"x": _Broken()}, 10_000)
    assert kept["preview"] == "<repr() failed: RuntimeError>"


def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(caplog: pytest.LogCaptureFixture) -> None:
    outage = Outage("Redis", logging.getLogger("zipline.worker"))
    with caplog.at_level(logging.INFO, logger="zipline.worker"):
        for _ in range(5):
            outage.failed(ConnectionError("refused"))
        outage.recovered()
        outage.recovered()
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["Redis unavailable; retrying with backoff", "Redis is back"]
