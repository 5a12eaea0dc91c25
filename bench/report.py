"""Turn raw runs into summaries, the Markdown tables and the ZipLine-vs-best-peer ratios (stdlib only).

The headline is the ``zipline`` row: ZipLine with its production defaults. Rows named ``zipline_*``
(the tuned ``zipline_quiet``) are shown beside it, never as the headline and never as a peer.
"""

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
    Metric("drain_noop", "jobs_per_s_from_start", "drain no-op from worker start", "jobs/s", True),
    Metric("drain_noop", "startup_s", "worker start to first job", "s", False),
    Metric("drain_sleep", "jobs_per_s", "drain sleep", "jobs/s", True),
    Metric("latency", "p50_ms", "latency p50", "ms", False),
    Metric("latency", "p95_ms", "latency p95", "ms", False),
    Metric("latency", "p99_ms", "latency p99", "ms", False),
    Metric("drain_noop", "peak_rss_mb", "worker RSS, drain no-op", "MiB", False),
    Metric("drain_sleep", "peak_rss_mb", "worker RSS, drain sleep", "MiB", False),
    Metric("drain_noop", "peak_pss_mb", "worker PSS, drain no-op", "MiB", False),
    Metric("drain_noop", "pss_after_mb", "pool PSS after the drain", "MiB", False),
)

SUBJECT = "zipline"


def is_peer(name: str) -> bool:
    """A peer library's row: not ZipLine in any configuration."""
    return name != SUBJECT and not name.startswith(SUBJECT + "_")


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
        "## ZipLine against the best peer",
        "",
        *headline(results),
        "",
        "## Every row",
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
        "by `bench/latency_floor.py`: ZipLine's path with bare clients and no ZipLine code, at the same pace (its "
        "row's durable INSERT, its enqueue script's push that wakes a worker process blocked with the claim script "
        "behind the wait, the claim's UPDATE to running, the hand-off to a thread). "
        "ZipLine's p50 minus the "
        f"floor, per run: {', '.join(f'{d:+.2f}' for d in _above_floor(results))} ms.",
        *_narrow_floor(latency),
    ]


def _narrow_floor(latency: dict[str, Any]) -> list[str]:
    """The same chain on a narrow table with a one-line push (the floor before 2026-12-05), if measured."""
    if "floor_narrow_p50_ms" not in latency:
        return []
    return [
        f"The same chain on a narrow table with a one-line push script, the least any queue with a durable row "
        f"could do: p50 {cell(latency, 'floor_narrow_p50_ms')} ms."
    ]


def _above_floor(results: dict[str, Any]) -> list[float]:
    runs = results["rows"]["zipline"]["runs"].get("latency", [])
    return [r["p50_ms"] - r["floor_p50_ms"] for r in runs if "p50_ms" in r and "floor_p50_ms" in r]


@dataclass(frozen=True)
class Headline:
    """One line of the headline table: a workload, judged against the best peer."""

    metric: Metric
    title: str  # with {n_noop}, {n_sleep}, {sleep_ms} filled from the run's sizes


HEADLINE = (
    Headline(Metric("drain_noop", "jobs_per_s", "", "jobs/s", True), "drain {n_noop} no-op jobs, after the first job"),
    Headline(Metric("drain_noop", "jobs_per_s_from_start", "", "jobs/s", True), "the same, counted from worker start"),
    Headline(Metric("drain_noop", "startup_s", "", "s", False), "worker start to first job"),
    Headline(Metric("drain_sleep", "jobs_per_s", "", "jobs/s", True), "{n_sleep} jobs sleeping {sleep_ms} ms"),
    Headline(Metric("latency", "p50_ms", "", "ms", False), "latency p50"),
    Headline(Metric("latency", "p99_ms", "", "ms", False), "latency p99"),
    Headline(Metric("enqueue_one", "jobs_per_s", "", "jobs/s", True), "enqueue one by one"),
    Headline(Metric("drain_noop", "pss_after_mb", "", "MiB", False), "PSS of the pool after the drain"),
)


def _median(row: dict[str, Any] | None, m: Metric) -> float | None:
    stat = (row or {}).get("summary", {}).get(m.workload, {}).get(m.key)
    return None if stat is None else float(stat["median"])


def _best_peer(results: dict[str, Any], m: Metric) -> tuple[float, str] | None:
    peers = [
        (value, row["label"])
        for name, row in results["rows"].items()
        if is_peer(name) and (value := _median(row, m)) is not None
    ]
    if not peers:
        return None
    return max(peers) if m.higher_is_better else min(peers)


def _value(value: float | None, unit: str) -> str:
    return "not measured" if value is None else f"{fmt(value)} {unit}"


def _sizes(meta: dict[str, Any]) -> dict[str, str]:
    return {"n_noop": f"{meta['n_noop']:,}", "n_sleep": f"{meta['n_sleep']:,}", "sleep_ms": f"{meta['sleep_ms']:g}"}


def headline(results: dict[str, Any]) -> list[str]:
    """The issue's table: per workload, ZipLine's median (defaults), the best peer's, and the ratio."""
    rows, sizes = results["rows"], _sizes(results["meta"])
    lines = [
        "| workload | ZipLine (defaults) | best peer | ratio |",
        "|---|---|---|---|",
    ]
    for h in HEADLINE:
        if h.metric.workload not in results["meta"]["workloads"]:
            continue
        mine, best = _median(rows.get(SUBJECT), h.metric), _best_peer(results, h.metric)
        ratio = f"{mine / best[0]:.2f}×" if mine is not None and best and best[0] else ""
        peer = f"{best[1]} {_value(best[0], h.metric.unit)}" if best else "no peer measured"
        lines.append(f"| {h.title.format(**sizes)} | {_value(mine, h.metric.unit)} | {peer} | {ratio} |")
    lines += [
        "",
        "Medians over the runs. Ratio: ZipLine ÷ best peer; for rates above 1 is better, for times and memory "
        "below 1 is.",
    ]
    p50, p99 = (_median(rows.get(SUBJECT), Metric("latency", k, "", "ms", False)) for k in ("p50_ms", "p99_ms"))
    if p50 and p99 is not None:
        lines.append(f"ZipLine's latency p99 ÷ p50: {p99 / p50:.2f}×.")
    return lines + _against_floor(rows.get(SUBJECT)) + _tuned(results)


def _against_floor(row: dict[str, Any] | None) -> list[str]:
    """Enqueue one by one and latency against the floor of ZipLine's own path, measured in the same run."""
    lines = []
    enqueue = Metric("enqueue_one", "jobs_per_s", "", "jobs/s", True)
    enqueue_floor = Metric("enqueue_one", "floor_jobs_per_s", "", "jobs/s", True)
    mine, floor = _median(row, enqueue), _median(row, enqueue_floor)
    if mine is not None and floor:
        lines.append(f"| enqueue one by one | {fmt(mine)} jobs/s | {fmt(floor)} jobs/s | {mine / floor:.0%} of it |")
    p50 = _median(row, Metric("latency", "p50_ms", "", "ms", False))
    latency_floor = _median(row, Metric("latency", "floor_p50_ms", "", "ms", False))
    if p50 is not None and latency_floor is not None:
        lines.append(f"| latency p50 | {fmt(p50)} ms | {fmt(latency_floor)} ms | {p50 - latency_floor:+.2f} ms |")
    if not lines:
        return []
    head = ["", "Against the floor of ZipLine's own path, measured in the same run (bare psycopg and redis-py):", ""]
    return [*head, "| workload | ZipLine (defaults) | floor | ZipLine against it |", "|---|---|---|---|", *lines]


def _tuned(results: dict[str, Any]) -> list[str]:
    """Each other ZipLine configuration (``zipline_*``) beside the defaults: named, never the headline."""
    rows, sizes = results["rows"], _sizes(results["meta"])
    lines: list[str] = []
    for name, row in rows.items():
        if name == SUBJECT or is_peer(name):
            continue
        lines += ["", f"Tuned, not the headline: {row['label']} (`{row['settings']}`):", ""]
        lines += ["| workload | ZipLine (defaults) | tuned | defaults ÷ tuned |", "|---|---|---|---|"]
        for h in HEADLINE:
            mine, tuned = _median(rows.get(SUBJECT), h.metric), _median(row, h.metric)
            if tuned is None:
                continue
            ratio = f"{mine / tuned:.2f}×" if mine is not None and tuned else ""
            unit = h.metric.unit
            lines.append(f"| {h.title.format(**sizes)} | {_value(mine, unit)} | {_value(tuned, unit)} | {ratio} |")
    return lines
