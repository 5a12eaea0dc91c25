"""Benchmark ZipLine against RQ, Celery, Dramatiq, Huey and arq: `make bench` runs this.

    python bench/run.py                              # everything, 3 runs each (long: see README)
    python bench/run.py --runs 1 --only rq_simple,dramatiq --n-noop 2000

Every workload runs in a fresh subprocess of the driver's own interpreter (bench/workload.py);
this orchestrator uses the standard library only and never imports a queue library.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import report, venvs  # noqa: E402
from bench.common import REDIS_URL, ROOT, redis_db  # noqa: E402
from bench.drivers import DRIVERS, PEERS_VENV, VENVS, DriverSpec  # noqa: E402
from bench.procs import PGID_FILE_ENV, kill_recorded_groups  # noqa: E402

WORKLOADS = ("enqueue_one", "enqueue_bulk", "drain_noop", "drain_sleep", "latency")
EXIT_IMPORT_ERROR = 3  # bench.workload's exit status when the driver cannot be imported


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3, help="runs of each workload (median, min, max reported)")
    p.add_argument("--only", help=f"comma-separated rows to run, of: {','.join(DRIVERS)}")
    p.add_argument("--workloads", help=f"comma-separated workloads, of: {','.join(WORKLOADS)}")
    p.add_argument("--n-noop", type=int, default=10_000, help="no-op jobs to enqueue / drain")
    p.add_argument("--n-sleep", type=int, default=2_000, help="sleeping jobs to drain")
    p.add_argument("--sleep-ms", type=float, default=20.0, help="how long each sleeping job sleeps")
    p.add_argument("--n-latency", type=int, default=300, help="jobs sent for the latency workload")
    p.add_argument("--interval-ms", type=float, default=10.0, help="gap between two latency jobs")
    p.add_argument("--processes", type=int, default=2, help="worker processes (where the library has them)")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds allowed for the jobs of one workload")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="results directory")
    p.add_argument("--skip-install", action="store_true", help="do not create/update the peers' venvs")
    args = p.parse_args(argv)
    args.only = _pick(args.only, list(DRIVERS), p)
    args.workloads = _pick(args.workloads, list(WORKLOADS), p)
    return args


def _pick(value: str | None, known: list[str], p: argparse.ArgumentParser) -> list[str]:
    if not value:
        return known
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    unknown = set(chosen) - set(known)
    if unknown:
        p.error(f"unknown: {', '.join(sorted(unknown))} (known: {', '.join(known)})")
    return chosen


def check_redis(url: str) -> None:
    """Fail early, with a clear message, if the bench Redis is not reachable."""
    if redis_db(url) == 0:
        raise SystemExit(f"BENCH_REDIS_URL must not use db 0 (the db is FLUSHDB'ed): {url}")
    host_port = url.split("//", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    host, _, port = host_port.partition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port or 6379)), timeout=3) as s:
            s.sendall(b"PING\r\n")
            if not s.recv(16).startswith(b"+PONG"):
                raise OSError("no PONG")
    except OSError as exc:
        raise SystemExit(f"Redis at {url} is not reachable: {exc}") from exc


def _kill_group(proc: subprocess.Popen[str], sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGTERM the workload's group (it then stops its workers), SIGKILL it after 30 s."""
    _kill_group(proc, signal.SIGTERM)
    try:
        return proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        _kill_group(proc, signal.SIGKILL)
        return proc.communicate()


def run_workload(spec: DriverSpec, extra: list[str], timeout: float, log: Path) -> tuple[int, dict[str, Any]]:
    """Run ``bench.workload`` for ``spec`` in its interpreter; return (exit status, JSON result).

    Whatever happens (timeout, Ctrl-C), the workload's process group and every worker group it
    recorded are killed before returning.
    """
    cmd = [str(spec.venv.python), "-m", "bench.workload", "--driver", spec.name, "--log", str(log), *extra]
    fd, pgid_path = tempfile.mkstemp(prefix="bench-pgids-")
    os.close(fd)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BENCH_REDIS_URL": REDIS_URL, PGID_FILE_ENV: pgid_path}
    with log.open("a") as fh:
        fh.write(f"\n===== {time.strftime('%H:%M:%S')} {' '.join(cmd[3:])}\n")
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=timeout + 60)
    except subprocess.TimeoutExpired:
        out, err = _stop(proc)
        out += '\n{"error": "timed out"}'
    except BaseException:
        _stop(proc)
        raise
    finally:
        kill_recorded_groups(Path(pgid_path))
    with log.open("a") as fh:
        fh.write(err)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {"error": f"no result (exit {proc.returncode}): {err[-300:]}"}
    return proc.returncode, result


def probe(spec: DriverSpec, log_dir: Path) -> dict[str, Any] | None:
    """Import the driver in its interpreter; None (with a notice) if ZipLine's adapter is unavailable."""
    if spec.name.startswith("zipline"):
        adapter = ROOT / "bench" / "zipline_adapter.py"
        for needed in (adapter, spec.venv.python):
            if not needed.exists():
                print(f"notice: {needed} is missing: ZipLine rows skipped")
                return None
    status, result = run_workload(spec, ["--check"], 120, log_dir / f"{spec.name}.log")
    if status == EXIT_IMPORT_ERROR and spec.name.startswith("zipline"):
        print(f"notice: ZipLine adapter cannot be imported ({result.get('error')}): ZipLine rows skipped")
        return None
    if status != 0:
        raise SystemExit(f"{spec.name}: driver check failed: {result}")
    return result


def workload_args(args: argparse.Namespace, workload: str) -> list[str]:
    """bench.workload options for one workload."""
    n = {"drain_sleep": args.n_sleep, "latency": args.n_latency}.get(workload, args.n_noop)
    return [
        *("--workload", workload, "--n", str(n), "--processes", str(args.processes)),
        *("--sleep-ms", str(args.sleep_ms), "--interval-ms", str(args.interval_ms), "--timeout", str(args.timeout)),
    ]


Raw = dict[str, dict[str, list[dict[str, Any]]]]


def measure(args: argparse.Namespace, specs: list[DriverSpec], probes: dict[str, Any], log_dir: Path) -> Raw:
    """All runs; runs are interleaved (run 1 of every row, then run 2, ...) so drift hits all rows alike."""
    raw: Raw = {s.name: {w: [] for w in args.workloads} for s in specs}
    for run in range(1, args.runs + 1):
        for spec in specs:
            for workload in args.workloads:
                if workload == "enqueue_bulk" and not probes[spec.name]["supports_bulk"]:
                    raw[spec.name][workload] = [{"skipped": "no bulk enqueue API"}]
                    continue
                started = time.monotonic()
                _, result = run_workload(
                    spec, workload_args(args, workload), args.timeout, log_dir / f"{spec.name}.log"
                )
                if spec.name == "zipline" and workload == "latency" and "p50_ms" in result:
                    result.update(latency_floor(spec, args, log_dir / "latency_floor.log"))
                raw[spec.name][workload].append(result)
                print(
                    f"run {run}/{args.runs}  {spec.name:15} {workload:13} {_brief(result)}"
                    f"  [{time.monotonic() - started:.0f}s]",
                    flush=True,
                )
    return raw


def latency_floor(spec: DriverSpec, args: argparse.Namespace, log: Path) -> dict[str, float]:
    """The paced floor under ZipLine's latency (bench/latency_floor.py), taken right after its run.

    The floor is ZipLine's own I/O (its row, scripts and statements) with bare clients; the narrow
    chain beside it is the least any queue with a durable row could do. Both move with the machine's
    load, so a latency figure means most beside the floor measured minutes from it.
    """
    cmd = [
        *(str(spec.venv.python), str(ROOT / "bench" / "latency_floor.py"), "--paced-only", "--summary"),
        *("--samples", str(args.n_latency), "--interval-ms", str(args.interval_ms), "--redis", REDIS_URL),
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=args.timeout + 60, check=False)
    with log.open("a") as fh:
        fh.write(done.stdout + done.stderr)
    if done.returncode != 0:
        print(f"warning: latency floor not measured (exit {done.returncode}; see {log})")
        return {}
    paced = json.loads(done.stdout.splitlines()[-1])["paced"]
    return {
        "floor_p50_ms": paced["path_ms"],
        "floor_p99_ms": paced["path_p99_ms"],
        "floor_narrow_p50_ms": paced["chained_ms"],
        "floor_steps_sum_ms": paced["sum_ms"],
    }


def _brief(result: dict[str, Any]) -> str:
    if "error" in result:
        return f"ERROR {result['error']}"
    if "jobs_per_s" in result:
        rss = f", RSS {result['peak_rss_mb']:.0f} MiB" if "peak_rss_mb" in result else ""
        return f"{result['jobs_per_s']:,.0f} jobs/s{rss}"
    if "p50_ms" in result:
        floor = f" (floor p50 {result['floor_p50_ms']:.2f} ms)" if "floor_p50_ms" in result else ""
        return f"p50 {result['p50_ms']:.2f} ms, p95 {result['p95_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms{floor}"
    return json.dumps(result)


def write_outputs(results: dict[str, Any], out_dir: Path) -> None:
    """latest.json, latest.md and (through the peers venv's matplotlib) latest.png."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / "latest.md").write_text(report.markdown(results))
    if not PEERS_VENV.python.exists():
        print(f"warning: chart not drawn: matplotlib lives in the peers' venv, and {PEERS_VENV.python} is missing")
        return
    chart = [str(PEERS_VENV.python), "-m", "bench.chart", str(out_dir / "latest.json"), str(out_dir / "latest.png")]
    if subprocess.run(chart, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False).returncode:
        print("warning: chart not drawn")


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _results(
    args: argparse.Namespace, specs: list[DriverSpec], probes: dict[str, Any], raw: Raw, load_start: float
) -> dict[str, Any]:
    """What ``latest.json`` holds: the run's conditions, then each row's settings, summary and raw runs."""
    return {
        "meta": {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "cpus": os.cpu_count(),
            "redis_url": REDIS_URL,
            **{k: getattr(args, k) for k in ("runs", "n_noop", "n_sleep", "sleep_ms", "n_latency", "interval_ms")},
            "processes": args.processes,
            "workloads": args.workloads,
            "loadavg_1min": {"start": load_start, "end": os.getloadavg()[0]},
        },
        "rows": {
            s.name: {
                "label": s.label,
                "version": probes[s.name].get("version", ""),
                "settings": s.settings,
                "summary": {w: report.summarize_runs(runs) for w, runs in raw[s.name].items()},
                "runs": raw[s.name],
            }
            for s in specs
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point of `make bench`."""
    args = parse_args(argv)
    # Turn SIGTERM/SIGINT into exceptions so that run_workload stops the current workload and its workers.
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    log_dir = args.out / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    check_redis(REDIS_URL)
    specs = [DRIVERS[name] for name in args.only]
    if not args.skip_install:
        for venv in VENVS:
            if venv is PEERS_VENV or any(s.venv is venv for s in specs):
                venvs.ensure(venv, log_dir)
    probes = {s.name: p for s in specs if (p := probe(s, log_dir)) is not None}
    specs = [s for s in specs if s.name in probes]
    print(f"rows: {', '.join(s.name for s in specs)}; workloads: {', '.join(args.workloads)}; runs: {args.runs}")
    load_start = os.getloadavg()[0]
    if load_start > 0.5:
        print(f"warning: load average is {load_start:.2f} before starting: other work will add noise")
    raw = measure(args, specs, probes, log_dir)
    results = _results(args, specs, probes, raw, load_start)
    write_outputs(results, args.out)
    print()
    print(report.markdown(results))
    print(f"\nresults: {args.out / 'latest.md'}, latest.json, latest.png; worker logs: {log_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
