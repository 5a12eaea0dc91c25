"""REST submission under load: ``POST /api/v1/jobs`` (single), ``POST /api/v1/jobs/batch`` (1,000 a
request), and a bare DRF create view (one INSERT + one Redis write) measured in the same run as the floor.

Run: ``.venv/bin/python bench/api_bench.py`` (needs ``wrk``: ``apt-get install wrk``). gunicorn serves
with 2 workers on 127.0.0.1; wrk drives 16 connections (4 for the batch) for ``--seconds`` each.
Prints one JSON line per workload and writes ``bench/results/api.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DB = "zipline_api_bench"
ENV = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.api_settings", "PYTHONPATH": str(ROOT)}

SINGLE = {"type": "bench_api", "payload": {"email": "user@example.com", "n": 1}, "queue": "bench", "priority": 5}
BARE = {"type": "bench_api", "payload": {"email": "user@example.com", "n": 1}, "queue": "bench", "priority": 5}

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
{auth}
"""


def manage(*args: str, env: dict[str, str] = ENV) -> str:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout


def prepare(db: str = DB, env: dict[str, str] = ENV) -> str:
    """A fresh database ``db`` (``env`` must name it), migrated; returns a new token's key."""
    psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc"]
    subprocess.run([*psql, f"DROP DATABASE IF EXISTS {db}"], check=True, capture_output=True)
    subprocess.run([*psql, f"CREATE DATABASE {db}"], check=True, capture_output=True)
    manage("migrate", "-v", "0", env=env)
    return manage("createtoken", "bench", "--create", env=env).strip().split()[-1]


def serve(port: int, env: dict[str, str] = ENV) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), "zipline_site.asgi:application",
         "--config", "python:zipline_site.gunicorn", "--bind", f"127.0.0.1:{port}",
         "--workers", "2", "--log-level", "warning"],
        cwd=ROOT, env=env, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)  # noqa: S310 - loopback
            return server
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not start")


def wrk(url: str, body: object, token: str | None, connections: int, seconds: int) -> dict[str, float]:
    auth = f'wrk.headers["Authorization"] = "Bearer {token}"' if token else ""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT.format(body=json.dumps(json.dumps(body)), auth=auth))
    out = subprocess.run(
        ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--latency", "-s", script.name, url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    os.unlink(script.name)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    return {
        "requests_per_second": round(rate),
        "p99_ms": round(float(p99.group(1)) * scale[p99.group(2)], 2) if p99 else float("nan"),
        "errors": int(non2xx.group(1)) if non2xx else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--port", type=int, default=18080)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("bench/api_bench.py needs wrk: apt-get install wrk")
    token = prepare()
    server = serve(args.port)
    base = f"http://127.0.0.1:{args.port}"
    try:
        results: dict[str, list[dict[str, float]]] = {}
        for _ in range(2):  # interleaved, so that drift of the machine hits both alike
            for name, url, body, auth, conns in (
                ("bare_drf_create_view", f"{base}/bench/bare-jobs", BARE, None, 16),
                ("post_jobs_single", f"{base}/api/v1/jobs", SINGLE, token, 16),
            ):
                results.setdefault(name, []).append(wrk(url, body, auth, conns, args.seconds))
        batch = wrk(f"{base}/api/v1/jobs/batch", {"jobs": [SINGLE] * 1000}, token, 4, args.seconds)
        batch["jobs_per_second"] = batch["requests_per_second"] * 1000
        summary: dict[str, dict[str, Any]] = {}
        for name, runs in results.items():
            best: dict[str, Any] = dict(max(runs, key=lambda r: r["requests_per_second"]))
            summary[name] = {**best, "runs": runs}
        summary["post_jobs_batch_1000"] = dict(batch)
        for name, figures in summary.items():
            print(json.dumps({"workload": name, **{k: v for k, v in figures.items() if k != "runs"}}))
        out = ROOT / "bench" / "results" / "api.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(summary, indent=2))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
