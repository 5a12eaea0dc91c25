"""The benchmark's report: ZipLine's latency is shown beside the floor measured after each run."""

from __future__ import annotations

from typing import Any

from bench import report


def results(latency_runs: list[dict[str, Any]]) -> dict[str, Any]:
    meta = {
        "date": "2026-11-29 02:00",
        "cpus": 2,
        "runs": len(latency_runs),
        "n_noop": 10_000,
        "n_sleep": 2_000,
        "sleep_ms": 20,
        "n_latency": 300,
        "interval_ms": 10,
        "processes": 2,
        "workloads": ["latency"],
        "loadavg_1min": {"start": 0.1, "end": 0.2},
    }
    row = {
        "label": "ZipLine",
        "version": "zipline 0.1.0",
        "settings": "bench/zipline_adapter.py",
        "summary": {"latency": report.summarize_runs(latency_runs)},
        "runs": {"latency": latency_runs},
    }
    return {"meta": meta, "rows": {"zipline": row}}


def test_the_floor_and_each_runs_distance_above_it_are_reported() -> None:
    runs = [
        {"p50_ms": 2.1, "p95_ms": 2.6, "p99_ms": 3.0, "floor_p50_ms": 1.9},
        {"p50_ms": 2.0, "p95_ms": 2.5, "p99_ms": 3.1, "floor_p50_ms": 2.1},
    ]
    text = report.markdown(results(runs))
    assert "| ZipLine | 2.05 (2.00–2.10) |" in text
    assert "Latency floor p50: 2.00 (1.90–2.10) ms" in text
    assert "per run: +0.20, -0.10 ms." in text


def test_without_a_floor_there_is_no_floor_line() -> None:
    text = report.markdown(results([{"p50_ms": 2.1, "p95_ms": 2.6, "p99_ms": 3.0}]))
    assert "| ZipLine | 2.10 |" in text and "floor" not in text
