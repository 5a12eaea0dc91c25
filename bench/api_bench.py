"""REST submission under load: ``POST /api/v1/jobs`` (single), ``POST /api/v1/jobs/batch`` (1,000 a
request), and a bare DRF create view (one INSERT + one Redis write) measured in the same run as the floor.

Run: ``.venv/bin/python bench/api_bench.py`` (``make bench-api``; needs ``wrk``: ``apt-get install wrk``).

The server is the product's: gunicorn with ``zipline_site.gunicorn`` (uvicorn's worker serving
``zipline_site.asgi``, 4 threads a process) and the Dockerfile's flags (:data:`SERVER_FLAGS`: 2 workers,
the access log on, written to /dev/null here), with ZipLine's default settings (logs at info, metrics on)
but its own database and Redis db (``bench/api_settings.py``). The bare view is served by the same server,
the same process, the same middleware. The rate limits stay on, at a rate the run never reaches, so that
every request pays its counter as under the default limits (a default 1,200/min would refuse the run).

wrk drives 16 connections (4 for the batch) for ``--seconds`` each, the workloads interleaved
``--rounds`` times (medians reported) so that drift of the shared machine hits each alike. Besides the
rates, each run reports CPU time per request, which moves far less with other load than a rate does:
the server's (gunicorn's master and workers, user + system from ``/proc``) and PostgreSQL's (the backends
connected to the bench's database). Prints one JSON line per workload and writes ``bench/results/api.json``.
``--profile`` records one gunicorn worker under py-spy during one more single-submit run instead.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.tools import ensure_tool  # noqa: E402

DB = "zipline_api_bench"
ENV = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.api_settings", "PYTHONPATH": str(ROOT)}
REDIS_URL = os.environ.get("JQS_REDIS_URL", "redis://127.0.0.1:6379/11")  # as bench/api_settings.py
REDIS_PREFIX = os.environ.get("JQS_REDIS_KEY_PREFIX", "zipbench-api")
#: The flags of the Dockerfile's CMD (and deploy/k8s/api-deployment.yaml's command), the product's server.
SERVER_FLAGS = ["--workers", "2", "--threads", "4", "--access-logfile", "-"]

SINGLE = {"type": "bench_api", "payload": {"email": "user@example.com", "n": 1}, "queue": "bench", "priority": 5}
BARE = {"type": "bench_api", "payload": {"email": "user@example.com", "n": 1}, "queue": "bench", "priority": 5}
BATCH_SIZE = 1000

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
{auth}
"""

_TICK = os.sysconf("SC_CLK_TCK")


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


def clear_redis(url: str = REDIS_URL, prefix: str = REDIS_PREFIX) -> None:
    """Delete the keys of an earlier run (bench/api_settings.py's db and prefix): a failed-login window left
    by a client of the dropped database's tokens would answer this run's requests 429."""
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def serve(port: int, env: dict[str, str] = ENV) -> subprocess.Popen[bytes]:
    """gunicorn as the product runs it (:data:`SERVER_FLAGS`), in a process group of its own."""
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), "zipline_site.asgi:application",
         "--config", "python:zipline_site.gunicorn", "--bind", f"127.0.0.1:{port}", *SERVER_FLAGS],
        cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
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
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    return {
        "requests_per_second": round(rate),
        "requests": total,
        "p50_ms": round(float(p50.group(1)) * scale[p50.group(2)], 2) if p50 else float("nan"),
        "p99_ms": round(float(p99.group(1)) * scale[p99.group(2)], 2) if p99 else float("nan"),
        "errors": int(non2xx.group(1)) if non2xx else 0,
    }


def _cpu_ticks(pid: int) -> int:
    """User + system ticks of a live process (all its threads), 0 if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = raw[raw.rfind(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def group_pids(pgid: int) -> list[int]:
    """The live processes of the process group ``pgid`` (gunicorn's master and its workers)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                raw = (entry / "stat").read_text()
            except OSError:
                continue
            if int(raw[raw.rfind(")") + 2 :].split()[2]) == pgid:
                pids.append(int(entry.name))
    return pids


def backend_pids(db: str = DB) -> list[int]:
    """The PostgreSQL backends connected to ``db`` now (read with psql, from outside the server)."""
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc",
         f"SELECT pid FROM pg_stat_activity WHERE datname = '{db}' AND pid <> pg_backend_pid()"],  # noqa: S608 - our own name
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [int(line) for line in out.split()]


class CpuMeter:
    """CPU seconds used between :meth:`start` and :meth:`stop` by the server's processes and by the
    database's backends (backends opened meanwhile count from their start)."""

    def __init__(self, server_pgid: int, db: str = DB) -> None:
        self.pgid, self.db = server_pgid, db

    def start(self) -> None:
        self.server0 = {pid: _cpu_ticks(pid) for pid in group_pids(self.pgid)}
        self.pg0 = {pid: _cpu_ticks(pid) for pid in backend_pids(self.db)}

    def stop(self) -> dict[str, float]:
        server1 = {pid: _cpu_ticks(pid) for pid in group_pids(self.pgid)}
        pg1 = {pid: _cpu_ticks(pid) for pid in backend_pids(self.db)}
        return {
            "server_cpu_s": sum(t - self.server0.get(pid, 0) for pid, t in server1.items()) / _TICK,
            "pg_cpu_s": sum(t - self.pg0.get(pid, 0) for pid, t in pg1.items()) / _TICK,
        }


def measured(meter: CpuMeter, url: str, body: object, token: str | None, conns: int, seconds: int) -> dict[str, Any]:
    """One wrk run with the CPU the server and the database spent on it, per request in µs."""
    meter.start()
    figures: dict[str, Any] = dict(wrk(url, body, token, conns, seconds))
    cpu = meter.stop()
    n = max(1, int(figures["requests"]))
    figures["server_cpu_us_per_request"] = round(cpu["server_cpu_s"] / n * 1e6)
    figures["pg_cpu_us_per_request"] = round(cpu["pg_cpu_s"] / n * 1e6)
    return figures


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the runs (the runs themselves kept under ``runs``)."""
    keys = [k for k, v in runs[0].items() if isinstance(v, int | float)]
    return {**{k: round(statistics.median(r[k] for r in runs), 2) for k in keys}, "runs": runs}


def profile(server: subprocess.Popen[bytes], url: str, token: str, seconds: int) -> None:
    """py-spy on one gunicorn worker (the busiest is either: the kernel balances the connections)
    during a single-submit run; prints the top functions by own time."""
    py_spy = Path(sys.executable).with_name("py-spy")
    workers = [pid for pid in group_pids(server.pid) if pid != server.pid]
    out = Path(tempfile.mkdtemp(prefix="api-profile-")) / "worker.txt"
    spy = subprocess.Popen(
        [str(py_spy), "record", "--pid", str(workers[0]), "--format", "raw", "--rate", "250", "--gil",
         "--output", str(out), "--duration", str(seconds + 1), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(0.5)
    wrk(url, SINGLE, token, 16, seconds)
    spy.wait(timeout=seconds + 30)
    print(f"py-spy samples (collapsed stacks): {out}")
    own: Counter[str] = Counter()
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            own[stack.split(";")[-1]] += int(count)
            total += int(count)
    for frame, samples in own.most_common(40):
        print(f"{100 * samples / max(1, total):5.1f} %  {frame}")


def summarised(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Each workload's medians, the batch's figures per job, and single submit against the bare view."""
    summary: dict[str, Any] = {name: median_of(runs) for name, runs in results.items()}
    if "post_jobs_batch_1000" in summary:
        batch = summary["post_jobs_batch_1000"]
        batch["jobs_per_second"] = round(
            statistics.median(r["requests_per_second"] * BATCH_SIZE for r in batch["runs"])
        )
        batch["server_cpu_us_per_job"] = round(batch["server_cpu_us_per_request"] / BATCH_SIZE, 1)
        batch["pg_cpu_us_per_job"] = round(batch["pg_cpu_us_per_request"] / BATCH_SIZE, 1)
    if "bare_drf_create_view" in summary and "post_jobs_single" in summary:
        single, bare = summary["post_jobs_single"], summary["bare_drf_create_view"]
        summary["single_vs_bare"] = {
            "rate_ratio": round(
                statistics.median(
                    s["requests_per_second"] / b["requests_per_second"]
                    for s, b in zip(single["runs"], bare["runs"], strict=True)
                ),
                3,
            ),
            "server_cpu_ratio": round(bare["server_cpu_us_per_request"] / single["server_cpu_us_per_request"], 3),
        }
    return summary


def report(summary: dict[str, Any]) -> None:
    """One JSON line per workload on stdout, and the whole summary in ``bench/results/api.json``."""
    for name, figures in summary.items():
        shown = {k: v for k, v in figures.items() if k != "runs"} if isinstance(figures, dict) else figures
        print(json.dumps({"workload": name, **shown} if isinstance(shown, dict) else {name: shown}))
    out = ROOT / "bench" / "results" / "api.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved runs of each workload (medians)")
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--profile", action="store_true", help="py-spy one worker under single submits")
    parser.add_argument("--only", default="bare,single,batch", help="workloads: bare,single,batch")
    args = parser.parse_args()
    ensure_tool("wrk", "wrk")
    token = prepare()
    clear_redis()
    server = serve(args.port)
    base = f"http://127.0.0.1:{args.port}"
    meter = CpuMeter(server.pid)
    workloads: dict[str, tuple[str, str, Any, str | None, int]] = {
        "bare": ("bare_drf_create_view", f"{base}/bench/bare-jobs", BARE, None, 16),
        "single": ("post_jobs_single", f"{base}/api/v1/jobs", SINGLE, token, 16),
        "batch": ("post_jobs_batch_1000", f"{base}/api/v1/jobs/batch", {"jobs": [SINGLE] * BATCH_SIZE}, token, 4),
    }
    chosen = [workloads[name] for name in args.only.split(",")]
    try:
        wrk(f"{base}/api/v1/jobs", SINGLE, token, 16, 1)  # warm both processes: connections, statements
        wrk(f"{base}/bench/bare-jobs", BARE, None, 16, 1)
        if args.profile:
            profile(server, f"{base}/api/v1/jobs", token, args.seconds)
            return
        load = [os.getloadavg()[0]]
        results: dict[str, list[dict[str, Any]]] = {}
        for _ in range(args.rounds):  # interleaved, so that drift of the machine hits each alike
            for name, url, body, auth, conns in chosen:
                results.setdefault(name, []).append(measured(meter, url, body, auth, conns, args.seconds))
            load.append(os.getloadavg()[0])
        summary = summarised(results)
        summary["load_average_1min"] = load
        report(summary)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
