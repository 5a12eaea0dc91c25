"""Draw bench/results/latest.png from latest.json; runs in the peers venv (matplotlib, Agg).

bench/.peers-venv/bin/python -m bench.chart bench/results/latest.json bench/results/latest.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

PANELS = (
    (
        "Throughput (jobs/s, log scale, higher is better)",
        [
            ("enqueue_one", "jobs_per_s", "enqueue\none by one"),
            ("enqueue_bulk", "jobs_per_s", "enqueue\nbulk"),
            ("drain_noop", "jobs_per_s", "drain\nno-op"),
            ("drain_sleep", "jobs_per_s", "drain\nsleep"),
        ],
    ),
    (
        "Enqueue-to-start latency (ms, log scale, lower is better)",
        [("latency", "p50_ms", "p50"), ("latency", "p99_ms", "p99")],
    ),
    (
        "Worker RSS, peak (MiB, lower is better)",
        [("drain_noop", "peak_rss_mb", "drain\nno-op"), ("drain_sleep", "peak_rss_mb", "drain\nsleep")],
    ),
)


def _stat(row: dict[str, Any], workload: str, key: str) -> dict[str, float] | None:
    return row["summary"].get(workload, {}).get(key)


def _panel(ax: Axes, title: str, columns: list[tuple[str, str, str]], rows: dict[str, Any], log: bool) -> None:
    names = list(rows)
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        xs, heights, lo, hi = [], [], [], []
        for j, (workload, key, _) in enumerate(columns):
            stat = _stat(rows[name], workload, key)
            if stat is None:
                continue
            xs.append(j - 0.4 + width * (i + 0.5))
            heights.append(stat["median"])
            lo.append(stat["median"] - stat["min"])
            hi.append(stat["max"] - stat["median"])
        ax.bar(xs, heights, width, yerr=[lo, hi], capsize=2, label=rows[name]["label"])
    ax.set_xticks(range(len(columns)), [c[2] for c in columns])
    ax.set_title(title, fontsize=10)
    if log:
        ax.set_yscale("log")
    ax.grid(axis="y", alpha=0.3)


def draw(results: dict[str, Any], out: Path) -> bool:
    """Write the bar chart, one panel per group of measured metrics; False if nothing to draw."""
    rows = results["rows"]
    panels = [
        (title, columns)
        for title, columns in PANELS
        if any(_stat(row, w, k) for row in rows.values() for w, k, _ in columns)
    ]
    if not panels:
        return False
    widths = [len(columns) for _, columns in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(3 + 1.8 * sum(widths), 6), gridspec_kw={"width_ratios": widths})
    axes = list(axes) if len(panels) > 1 else [axes]
    for ax, (title, columns) in zip(axes, panels, strict=True):
        _panel(ax, title, columns, rows, log="RSS" not in title)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 8), fontsize=9)
    meta = results["meta"]
    fig.suptitle(f"ZipLine vs peers — {meta['date']}, {meta['cpus']} CPUs, median of {meta['runs']} run(s)")
    fig.tight_layout(rect=(0, 0.07, 1, 0.95))
    fig.savefig(out, dpi=110)
    return True


def main() -> None:
    """CLI: chart.py RESULTS_JSON OUT_PNG."""
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    if not draw(json.loads(src.read_text()), out):
        print("chart: nothing measured, no chart drawn")


if __name__ == "__main__":
    main()
