"""REST wait (issue 17): how soon ``GET /api/v1/jobs/{id}?wait=30s`` answers after a real worker ends the job.

Run: ``.venv/bin/python bench/wait_bench.py`` (``make bench-wait``). The API is the product's server
(bench/api_bench.py's gunicorn: 2 uvicorn workers, ZipLine's defaults, its own database and Redis db) and
the jobs run on ``manage.py runworkers --processes 2`` with the same settings. One job at a time: submit a
job that sleeps ``--sleep-ms``, ask for it with ``?wait=30s`` at once, and take the gap between the row's
``completed_at`` (stamped by the worker when the job returned) and the answer's arrival here (both clocks
are this machine's). The gap holds the recorder's batch and commit, the Pub/Sub message that wakes the
waiting request, the API's last read of the row and the answer. Target: under 50 ms. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api_bench import ENV, clear_redis, manage, prepare, serve  # noqa: E402 - after the path
from bench.procs import spawn  # noqa: E402

TARGET_MS = 50.0


def call(method: str, url: str, token: str, body: object = None) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - loopback
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 - loopback
        result: dict[str, Any] = json.loads(answer.read())
        return result


def one_gap(base: str, token: str, sleep_ms: float) -> float:
    """Seconds from the job's ``completed_at`` to the waiting GET's answer."""
    job = call("POST", f"{base}/api/v1/jobs", token, {"type": "bench_sleep", "payload": {"seconds": sleep_ms / 1000}})
    body = call("GET", f"{base}/api/v1/jobs/{job['id']}?wait=30s", token)
    answered = time.time()
    if body["status"] != "completed":
        raise SystemExit(f"job {job['id']} answered as {body['status']}: the wait ran out or the job failed")
    return answered - datetime.fromisoformat(body["completed_at"].replace("Z", "+00:00")).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100, help="waits measured, one after the other")
    parser.add_argument("--sleep-ms", type=float, default=50.0, help="how long each job sleeps")
    parser.add_argument("--port", type=int, default=18083)
    args = parser.parse_args()
    prepare()
    token = manage("createtoken", "bench-wait", "--viewer").strip().split()[-1]  # submits and reads its jobs
    clear_redis()
    server = serve(args.port)
    pool = spawn([sys.executable, "manage.py", "runworkers", "--processes", "2"], ENV, None)
    base = f"http://127.0.0.1:{args.port}"
    try:
        for _ in range(5):  # warm: the pool's start, each API process's connections and listener
            one_gap(base, token, args.sleep_ms)
        gaps = sorted(one_gap(base, token, args.sleep_ms) * 1000 for _ in range(args.jobs))
    finally:
        for process in (pool, server):
            os.killpg(process.pid, signal.SIGTERM)
    median = statistics.median(gaps)
    print(json.dumps({
        "workload": "rest_wait_end_to_answer", "jobs": len(gaps), "median_ms": round(median, 1),
        "p90_ms": round(gaps[int(len(gaps) * 0.9)], 1), "max_ms": round(gaps[-1], 1),
        "target_ms": TARGET_MS, "met": median < TARGET_MS, "load_average_1min": round(os.getloadavg()[0], 2),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
