"""The benchmark's report: the headline is ZipLine's defaults against the best peer, the tuned row named
beside it, and enqueue and latency beside the floors measured in the same run."""

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


def row(label: str, summaries: dict[str, dict[str, float]]) -> dict[str, Any]:
    runs = {workload: [values] for workload, values in summaries.items()}
    return {
        "label": label,
        "version": "",
        "settings": "s",
        "summary": {w: report.summarize_runs(r) for w, r in runs.items()},
        "runs": runs,
    }


def headline_results() -> dict[str, Any]:
    meta = results([])["meta"] | {"workloads": ["enqueue_one", "drain_noop", "latency"], "n_noop": 1000}
    zipline = {
        "enqueue_one": {"jobs_per_s": 1700.0, "floor_jobs_per_s": 2000.0},
        "drain_noop": {"jobs_per_s": 4000.0, "jobs_per_s_from_start": 3000.0, "startup_s": 0.5, "pss_after_mb": 90.0},
        "latency": {"p50_ms": 2.0, "p95_ms": 2.5, "p99_ms": 3.0, "floor_p50_ms": 1.8},
    }
    quiet = {
        "drain_noop": {"jobs_per_s": 5000.0, "jobs_per_s_from_start": 3500.0, "startup_s": 0.5, "pss_after_mb": 88.0}
    }
    huey = {
        "enqueue_one": {"jobs_per_s": 7000.0},
        "drain_noop": {"jobs_per_s": 2000.0, "jobs_per_s_from_start": 1800.0, "startup_s": 0.25, "pss_after_mb": 30.0},
        "latency": {"p50_ms": 0.8, "p95_ms": 1.0, "p99_ms": 1.2},
    }
    dramatiq = {
        "drain_noop": {"jobs_per_s": 3200.0, "jobs_per_s_from_start": 2900.0, "startup_s": 0.3, "pss_after_mb": 55.0}
    }
    rows = {
        "zipline": row("ZipLine", zipline),
        "zipline_quiet": row("ZipLine (quiet)", quiet),
        "huey_processes": row("Huey (processes)", huey),
        "dramatiq": row("Dramatiq", dramatiq),
    }
    return {"meta": meta, "rows": rows}


def test_the_headline_is_zipline_s_defaults_against_the_best_peer_never_the_quiet_row() -> None:
    lines = report.headline(headline_results())
    assert "| drain 1,000 no-op jobs, after the first job | 4,000 jobs/s | Dramatiq 3,200 jobs/s | 1.25× |" in lines
    assert "| the same, counted from worker start | 3,000 jobs/s | Dramatiq 2,900 jobs/s | 1.03× |" in lines
    assert "| worker start to first job | 0.50 s | Huey (processes) 0.25 s | 2.00× |" in lines
    assert "| latency p99 | 3.00 ms | Huey (processes) 1.20 ms | 2.50× |" in lines
    assert "| enqueue one by one | 1,700 jobs/s | Huey (processes) 7,000 jobs/s | 0.24× |" in lines
    assert "| PSS of the pool after the drain | 90.0 MiB | Huey (processes) 30.0 MiB | 3.00× |" in lines
    assert not any("sleeping" in line for line in lines)  # drain_sleep was not run
    assert "ZipLine's latency p99 ÷ p50: 1.50×." in lines


def test_enqueue_and_latency_are_also_shown_against_the_floor_of_the_same_run() -> None:
    lines = report.headline(headline_results())
    assert "| enqueue one by one | 1,700 jobs/s | 2,000 jobs/s | 85% of it |" in lines
    assert "| latency p50 | 2.00 ms | 1.80 ms | +0.20 ms |" in lines


def test_the_tuned_row_is_named_and_shown_beside_the_defaults_never_as_a_peer() -> None:
    text = "\n".join(report.headline(headline_results()))
    assert "Tuned, not the headline: ZipLine (quiet) (`s`):" in text
    assert "| drain 1,000 no-op jobs, after the first job | 4,000 jobs/s | 5,000 jobs/s | 0.80× |" in text
    assert "ZipLine (quiet) 5,000" not in text  # 5,000 jobs/s would be the best "peer" otherwise
    assert report.is_peer("huey_threads") and not report.is_peer("zipline") and not report.is_peer("zipline_quiet")


def test_the_markdown_starts_with_the_headline_and_keeps_every_row() -> None:
    text = report.markdown(headline_results())
    assert text.index("## ZipLine against the best peer") < text.index("## Every row")
    assert "| ZipLine (quiet) |" in text and "| Dramatiq |" in text
