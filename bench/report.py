"""Turn raw runs into summaries, the Markdown table and the ZipLine-vs-best-peer ratios (stdlib only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.common import summarize


@dataclass(frozen=True)
class Metric:
    """One column of the table: a value reported by a workload."""

    workload: str
    key: str
    title: str
    unit: str
    higher_is_better: bool


METRICS = (
    Metric("enqueue_one", "jobs_per_s", "enqueue one by one", "jobs/s", True),
    Metric("enqueue_bulk", "jobs_per_s", "enqueue bulk", "jobs/s", True),
    Metric("drain_noop", "jobs_per_s", "drain no-op", "jobs/s", True),
    Metric("drain_sleep", "jobs_per_s", "drain sleep", "jobs/s", True),
    Metric("latency", "p50_ms", "latency p50", "ms", False),
    Metric("latency", "p95_ms", "latency p95", "ms", False),
    Metric("latency", "p99_ms", "latency p99", "ms", False),
    Metric("drain_noop", "peak_rss_mb", "worker RSS, drain no-op", "MiB", False),
    Metric("drain_sleep", "peak_rss_mb", "worker RSS, drain sleep", "MiB", False),
    Metric("drain_noop", "peak_pss_mb", "worker PSS, drain no-op", "MiB", False),
)


def summarize_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median/min/max of every numeric key over the successful runs of one workload."""
    ok = [r for r in runs if "error" not in r and "skipped" not in r]
    out: dict[str, Any] = {}
    if any("skipped" in r for r in runs):
        out["skipped"] = next(r["skipped"] for r in runs if "skipped" in r)
    errors = [r["error"] for r in runs if "error" in r]
    if errors:
        out["errors"] = errors
    keys = sorted({k for r in ok for k, v in r.items() if isinstance(v, int | float) and k not in ("n", "processes")})
    for key in keys:
        out[key] = summarize([r[key] for r in ok if key in r])
    return out


def fmt(value: float) -> str:
    """Compact number: thousands separators for large values, 2-3 significant digits for small ones."""
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def cell(summary: dict[str, Any] | None, key: str) -> str:
    """Table cell: 'median (min–max)', or why there is none."""
    if not summary:
        return "–"
    if "skipped" in summary:
        return "n/a"
    stat = summary.get(key)
    if stat is None:
        return "error" if summary.get("errors") else "–"
    text = fmt(stat["median"])
    if stat["runs"] > 1:
        text += f" ({fmt(stat['min'])}–{fmt(stat['max'])})"
    if summary.get("errors"):
        text += f" [{len(summary['errors'])} failed]"
    return text


def measured_metrics(results: dict[str, Any]) -> list[Metric]:
    """The columns of the workloads that were run."""
    return [m for m in METRICS if m.workload in results["meta"]["workloads"]]


def markdown(results: dict[str, Any]) -> str:
    """The results table, one row per library, plus the settings used."""
    meta = results["meta"]
    lines = [
        "# ZipLine vs peers",
        "",
        f"{meta['date']} · {meta['cpus']} CPUs · runs per workload: {meta['runs']} · "
        f"no-op jobs: {meta['n_noop']:,} · sleep jobs: {meta['n_sleep']:,} × {meta['sleep_ms']:g} ms · "
        f"latency jobs: {meta['n_latency']} every {meta['interval_ms']:g} ms · worker processes: {meta['processes']} · "
        f"1-min load average before/after: {meta['loadavg_1min']['start']:.2f}/{meta['loadavg_1min']['end']:.2f}",
        "",
        "Cells: median (min–max) over the runs. Throughput: higher is better; latency and RSS: lower is better.",
        "",
    ]
    metrics = measured_metrics(results)
    header = ["library"] + [f"{m.title} ({m.unit})" for m in metrics]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in results["rows"].values():
        cells = [cell(row["summary"].get(m.workload), m.key) for m in metrics]
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    lines += _floor_note(results)
    lines += ["", "| library | version | settings |", "|---|---|---|"]
    for row in results["rows"].values():
        lines.append(f"| {row['label']} | {row['version']} | `{row['settings']}` |")
    return "\n".join(lines) + "\n"


def _floor_note(results: dict[str, Any]) -> list[str]:
    """ZipLine's latency beside the floor of its design measured right after each run, if it was."""
    latency = results["rows"].get("zipline", {}).get("summary", {}).get("latency", {})
    if "floor_p50_ms" not in latency:
        return []
    return [
        "",
        f"Latency floor p50: {cell(latency, 'floor_p50_ms')} ms, measured right after each of ZipLine's latency runs "
        "by `bench/latency_floor.py`: a job's path with bare clients and no ZipLine code, at the same pace (a "
        "durable INSERT, the push that wakes a worker process, its UPDATE to running, the hand-off to a thread). "
        "ZipLine's p50 minus the "
        f"floor, per run: {', '.join(f'{d:+.2f}' for d in _above_floor(results))} ms.",
    ]


def _above_floor(results: dict[str, Any]) -> list[float]:
    runs = results["rows"]["zipline"]["runs"].get("latency", [])
    return [r["p50_ms"] - r["floor_p50_ms"] for r in runs if "p50_ms" in r and "floor_p50_ms" in r]


def ratios(results: dict[str, Any], subject: str = "zipline") -> list[str]:
    """One line per metric comparing ``subject``'s median with the best peer's median."""
    rows = results["rows"]
    if subject not in rows:
        return [f"{subject}: not measured"]
    lines = []
    for m in measured_metrics(results):
        mine = rows[subject]["summary"].get(m.workload, {}).get(m.key)
        peers = [
            (row["summary"][m.workload][m.key]["median"], row["label"])
            for name, row in rows.items()
            if name != subject and m.key in row["summary"].get(m.workload, {})
        ]
        label = f"{m.title} ({m.unit})"
        if mine is None or not peers:
            lines.append(f"{label}: {subject} not measured" if mine is None else f"{label}: no peer measured")
            continue
        best, best_label = max(peers) if m.higher_is_better else min(peers)
        ratio = mine["median"] / best if best else float("inf")
        better = "higher" if m.higher_is_better else "lower"
        lines.append(
            f"{label}: {rows[subject]['label']} {fmt(mine['median'])} vs best peer {best_label} {fmt(best)}"
            f" -> {ratio:.2f}x ({better} is better)"
        )
    return lines
