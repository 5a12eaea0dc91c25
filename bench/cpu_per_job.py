"""Where a no-op job's CPU goes (``make bench-cpu``): for a drain of 10,000 queued no-op jobs by
``manage.py runworkers --processes 2``, the CPU time per job of the worker pool, of PostgreSQL and of
redis-server, the Redis commands per job and the SQL statements per job with their time; for ZipLine's
defaults (a JSON log line per job at info, metrics on) and for the quiet configuration (logs at warning,
metrics off), in alternating runs (3 each), medians.

    .venv/bin/python bench/cpu_per_job.py                 # 3 runs of each configuration
    .venv/bin/python bench/cpu_per_job.py --runs 1 --n 2000 --profile

CPU time per job depends far less on other load than throughput does, which is why it measures issue
18's "the per-job log line and metrics cost at most 5 % of the no-op drain against both off".

Method: a PostgreSQL cluster and a redis-server of this script's own (``bench/private_servers.py``:
``pg_stat_statements`` needs a server start, and the shared servers serve other clients too). Each run
truncates the jobs, enqueues the jobs with ``enqueue_many``, starts the pool, and takes two snapshots:
when the first job is done (the pool's start-up is behind it) and when the last is. Per job is the
difference divided by the jobs finished in between. CPU is user + system time from ``/proc``: the pool
is the supervisor and its workers (every process of its tree); PostgreSQL is every process of the
cluster but this script's own backend, and "the pool's backends" only the client backends; Redis is
``INFO cpu``. Redis commands come from ``INFO commandstats`` (less this script's own ``GET`` polls,
without ``INFO`` and ``CONFIG``), SQL statements from ``pg_stat_statements`` (less this script's own).
The no-op job's body is one pipeline (``SET NX`` and ``INCR``): it is in the Redis figures.

``--profile`` adds one more run of the defaults under ``py-spy record --subprocesses --gil`` (not
measured for CPU: the sampling costs some) and prints the busiest worker process's top functions by
self time, Python's own (``--gil`` samples only the thread holding the GIL; ``bench/pyspy_summary.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BULK_BATCH, ROOT  # noqa: E402
from bench.private_servers import PrivatePostgres, PrivateRedis  # noqa: E402
from bench.procs import free_port, kill_trees, spawn, tree  # noqa: E402

#: The configurations compared; the quiet one's settings are the ``zipline_quiet`` row's.
QUIET = {"JQS_LOG_LEVEL": "warning", "JQS_METRICS_ENABLED": "false"}
CONFIGS: dict[str, dict[str, str]] = {"defaults": {}, "quiet": QUIET}
_TICK = os.sysconf("SC_CLK_TCK")
_OWN_COMMANDS = ("info", "config", "config|resetstat", "flushdb", "ping", "client|setinfo", "hello")


def cpu_seconds(pids: set[int]) -> float:
    """User + system CPU time used so far by the live processes ``pids`` (their own, not their children's)."""
    total = 0
    for pid in pids:
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
    return total / _TICK


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _parent(pid: int) -> int | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(raw[raw.rfind(")") + 2 :].split()[1])


@dataclass
class Snapshot:
    """Counters at one moment of a drain."""

    done: int
    at: float
    pool_cpu: float
    pg_cpu: float
    pg_backends_cpu: float
    redis_cpu: float
    commands: dict[str, tuple[int, int]]  # command -> (calls, usec)
    statements: dict[str, tuple[str, int, float, int]]  # queryid -> (query, calls, total ms, rows)
    polls: int


class Counters:
    """Reads the snapshots: the pool's tree, the private cluster, the private Redis."""

    def __init__(self, pg: PrivatePostgres, redis_url: str) -> None:
        import psycopg
        import redis

        self.pg = pg
        self.sql = psycopg.connect(pg.url, autocommit=True)
        self.own_backend = int(self.sql.execute("SELECT pg_backend_pid()").fetchone()[0])  # type: ignore[index]
        self.redis = redis.Redis.from_url(redis_url)
        self.polls = 0

    def done(self) -> int:
        """Jobs finished (the no-op body's counter); counted as one of this script's ``GET`` polls."""
        from bench.common import read_done

        self.polls += 1
        return read_done(self.redis)

    def reset(self) -> None:
        """Empty the bench db and zero Redis' command counters and the statement statistics."""
        self.redis.flushdb()
        self.redis.config_resetstat()
        self.sql.execute("SELECT pg_stat_statements_reset()")

    def take(self, pool_root: int) -> Snapshot:
        """Every counter, now."""
        cluster = tree([self.pg.postmaster_pid()]) - {self.own_backend}
        backends = {pid for pid in cluster if f" {self.pg.database} " in _cmdline(pid)}
        cpu: Any = self.redis.info("cpu")
        stats: Any = self.redis.info("commandstats")
        commands = {k.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"])) for k, v in stats.items()}
        rows = self.sql.execute(
            "SELECT queryid::text, query, calls, total_exec_time, rows FROM pg_stat_statements "
            "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND query NOT LIKE '%pg_stat_statements%' AND query NOT LIKE '%pg_backend_pid%'"
        ).fetchall()
        return Snapshot(
            done=self.done(),
            at=time.monotonic(),
            pool_cpu=cpu_seconds(tree([pool_root])),
            pg_cpu=cpu_seconds(cluster),
            pg_backends_cpu=cpu_seconds(backends),
            redis_cpu=float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
            commands=commands,
            statements={r[0]: (r[1], int(r[2]), float(r[3]), int(r[4])) for r in rows},
            polls=self.polls,
        )

    def wait_done(self, target: int, timeout: float) -> None:
        """Poll (every 10 ms) until ``target`` jobs are done."""
        deadline = time.monotonic() + timeout
        while (seen := self.done()) < target:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {seen} of {target} jobs done after {timeout:.0f} s")
            time.sleep(0.01)


def per_job(a: Snapshot, b: Snapshot) -> dict[str, Any]:
    """What happened between two snapshots, per job finished in between (CPU in µs)."""
    n = b.done - a.done
    if n <= 0:
        raise RuntimeError("no job finished between the two snapshots")
    us = 1e6 / n
    cpu = {
        "pool_us": (b.pool_cpu - a.pool_cpu) * us,
        "pg_us": (b.pg_cpu - a.pg_cpu) * us,
        "pg_backends_us": (b.pg_backends_cpu - a.pg_backends_cpu) * us,
        "redis_us": (b.redis_cpu - a.redis_cpu) * us,
    }
    cpu["total_us"] = cpu["pool_us"] + cpu["pg_us"] + cpu["redis_us"]
    commands, statements = _command_deltas(a, b, n), _statement_deltas(a, b, n)
    wall = b.at - a.at
    return {"jobs": n, "wall_s": wall, "jobs_per_s": n / wall, **cpu, "commands": commands, "statements": statements}


def _command_deltas(a: Snapshot, b: Snapshot, n: int) -> dict[str, dict[str, float]]:
    """Redis commands per job, less this script's own (its ``GET`` polls between the snapshots)."""
    own_gets = b.polls - a.polls
    commands = {}
    for name, (calls, usec) in b.commands.items():
        before_calls, before_usec = a.commands.get(name, (0, 0))
        calls -= before_calls + (own_gets if name == "get" else 0)
        if calls > 0 and name not in _OWN_COMMANDS:
            commands[name] = {"calls": calls / n, "redis_us": (usec - before_usec) / n}
    return commands


def _statement_deltas(a: Snapshot, b: Snapshot, n: int) -> dict[str, dict[str, float]]:
    """SQL statements per job, by normalised text: calls, execution time (µs) and rows, per job."""
    statements: dict[str, dict[str, float]] = {}
    for queryid, (query, calls, ms, rows) in b.statements.items():
        _, before_calls, before_ms, before_rows = a.statements.get(queryid, (query, 0, 0.0, 0))
        if calls > before_calls:
            figures = statements.setdefault(query, {"calls": 0.0, "exec_us": 0.0, "rows": 0.0})
            figures["calls"] += (calls - before_calls) / n
            figures["exec_us"] += (ms - before_ms) * 1000 / n
            figures["rows"] += (rows - before_rows) / n
    return statements


def pool_env(config: str, pg: PrivatePostgres, redis: PrivateRedis) -> dict[str, str]:
    """The pool's environment: the private servers, a free metrics port, and the configuration's settings."""
    return {
        "DJANGO_SETTINGS_MODULE": "bench.zipline_settings",
        "JQS_DATABASE_URL": pg.url,
        "JQS_REDIS_URL": redis.url,
        "BENCH_REDIS_URL": redis.url,  # the no-op job's body counts itself there
        "JQS_METRICS_HOST": "127.0.0.1",
        "JQS_METRICS_PORT": str(free_port()),
        **CONFIGS[config],
    }


def _enqueue(n: int) -> None:
    """Empty the jobs table and enqueue ``n`` no-op jobs, in batches (the pool is not running yet)."""
    from django.db import connection

    from jobs import JobSpec, enqueue_many

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE jobs_job CASCADE")
    for first in range(0, n, BULK_BATCH):
        enqueue_many([JobSpec("bench_noop") for _ in range(min(BULK_BATCH, n - first))])


def drain(config: str, args: argparse.Namespace, servers: tuple[PrivatePostgres, PrivateRedis], c: Counters) -> Any:
    """One measured drain of ``args.n`` jobs by a fresh pool in ``config``."""
    c.reset()
    _enqueue(args.n)
    argv = [sys.executable, "manage.py", "runworkers", "--processes", str(args.processes)]
    pool = spawn(argv, pool_env(config, *servers), args.log)
    try:
        c.wait_done(1, args.timeout)
        first = c.take(pool.pid)
        c.wait_done(args.n, args.timeout)
        last = c.take(pool.pid)
    finally:
        kill_trees([pool.pid], grace=20.0)
        pool.wait()
    return {"config": config, **per_job(first, last)}


def profile(args: argparse.Namespace, servers: tuple[PrivatePostgres, PrivateRedis], c: Counters) -> list[str]:
    """One more drain with the defaults, under py-spy; the busiest worker's top functions by self time."""
    from bench.pyspy_summary import summary, worker_profiles

    out = args.out.with_suffix(".pyspy.txt")
    c.reset()
    _enqueue(args.n)
    # --gil: only the thread holding the GIL is sampled, so Python's own CPU (a thread asleep or waiting on
    # a socket lets the GIL go); --nonblocking: the pool is not paused for each sample.
    spy = [str(Path(sys.executable).with_name("py-spy")), "record", "--subprocesses", "--gil", "--nonblocking"]
    spy += ["--rate", "500", "--format", "raw", "--output", str(out), "--"]
    argv = [*spy, sys.executable, "manage.py", "runworkers", "--processes", str(args.processes)]
    spied = spawn(argv, pool_env("defaults", *servers), args.log)
    try:
        c.wait_done(args.n, args.timeout)
    finally:
        supervisor = [pid for pid in tree([spied.pid]) if _parent(pid) == spied.pid]
        kill_trees(supervisor or [spied.pid], grace=20.0)
        spied.wait(timeout=60)  # py-spy writes its file once the pool has exited
    profiles = worker_profiles(out.read_text()) if out.exists() else []
    return summary(profiles[0]) if profiles else [f"py-spy: no worker samples (see {args.log})"]


SCALARS = ("pool_us", "pg_us", "pg_backends_us", "redis_us", "total_us", "jobs_per_s")
LABELS = {
    "pool_us": "worker pool (supervisor + workers)",
    "pg_us": "PostgreSQL (every process of the cluster)",
    "pg_backends_us": "  of which the pool's backends",
    "redis_us": "redis-server",
    "total_us": "total (pool + PostgreSQL + Redis)",
    "jobs_per_s": "jobs/s between the snapshots (load-dependent)",
}


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the runs of one configuration: each scalar, each command's and each statement's figures."""
    out: dict[str, Any] = {k: statistics.median(r[k] for r in runs) for k in SCALARS}
    out["spread"] = {k: [min(r[k] for r in runs), max(r[k] for r in runs)] for k in SCALARS}
    for part in ("commands", "statements"):
        names = {name for r in runs for name in r[part]}
        out[part] = {
            name: {f: statistics.median(r[part].get(name, {}).get(f, 0.0) for r in runs) for f in figures}
            for name in names
            if (figures := next(iter(r[part][name] for r in runs if name in r[part])).keys())
        }
    return out


def report(summary: dict[str, dict[str, Any]]) -> list[str]:
    """The tables: CPU per job, the cost of the defaults, Redis commands, SQL statements."""
    d, q = summary["defaults"], summary["quiet"]
    lines = ["CPU per job (µs), median [min–max] of the runs:", "", "| | defaults | quiet | defaults − quiet |"]
    lines.append("|---|---:|---:|---:|")
    for k in SCALARS:
        cells = [f"{s[k]:,.0f} [{s['spread'][k][0]:,.0f}–{s['spread'][k][1]:,.0f}]" for s in (d, q)]
        lines.append(f"| {LABELS[k]} | {cells[0]} | {cells[1]} | {d[k] - q[k]:+,.0f} |")
    pool, total = d["pool_us"] - q["pool_us"], d["total_us"] - q["total_us"]
    lines += [
        "",
        f"The per-job log line and metrics: {pool:+,.0f} µs of the pool's CPU per job ({pool / q['pool_us']:+.1%} "
        f"of the quiet pool's), {total:+,.0f} µs of the total ({total / q['total_us']:+.1%}); issue 18: at most 5 %.",
        "",
        "Redis commands per job (no-op body: one SET NX and one INCR), calls and µs inside Redis:",
        "",
        "| command | defaults | quiet |",
        "|---|---:|---:|",
    ]
    for name in sorted(d["commands"], key=lambda n: -d["commands"][n]["calls"]):
        cells = [
            f"{s['commands'].get(name, {}).get('calls', 0):.2f} ({s['commands'].get(name, {}).get('redis_us', 0):.1f} µs)"
            for s in (d, q)
        ]
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    lines += ["", "SQL statements per job (defaults), by time (under 0.05 µs and 0.01 calls left out):", ""]
    lines += ["| calls | µs | rows | statement |", "|---:|---:|---:|---|"]
    shown = [kv for kv in d["statements"].items() if kv[1]["exec_us"] >= 0.05 or kv[1]["calls"] >= 0.01]
    for query, s in sorted(shown, key=lambda kv: -kv[1]["exec_us"])[:15]:
        text = " ".join(query.split())
        cut = f"{text[:110]}{'…' if len(text) > 110 else ''}"
        lines.append(f"| {s['calls']:.3f} | {s['exec_us']:.1f} | {s.get('rows', 0):.2f} | `{cut}` |")
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=10_000, help="no-op jobs drained per run")
    p.add_argument("--runs", type=int, default=3, help="runs of each configuration, alternating")
    p.add_argument("--processes", type=int, default=2, help="runworkers --processes")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds allowed for one drain")
    p.add_argument("--profile", action="store_true", help="one more drain with the defaults under py-spy")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "cpu.json", help="results file")
    args = p.parse_args(argv)
    args.log = args.out.parent / "logs" / "cpu_per_job.log"
    args.log.parent.mkdir(parents=True, exist_ok=True)
    return args


def measure(args: argparse.Namespace, servers: tuple[PrivatePostgres, PrivateRedis]) -> dict[str, Any]:
    """Migrate the private database, then the runs (defaults and quiet alternating), then the profile."""
    env = {k: v for k, v in pool_env("defaults", *servers).items() if k.startswith(("JQS_", "BENCH_", "DJANGO"))}
    os.environ.update(env)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=os.environ, check=True)
    import django

    django.setup()
    counters = Counters(servers[0], servers[1].url)
    runs: list[dict[str, Any]] = []
    for i in range(args.runs):
        for config in ("defaults", "quiet") if i % 2 == 0 else ("quiet", "defaults"):
            runs.append(drain(config, args, servers, counters))
            r = runs[-1]
            pool, total = r["pool_us"], r["total_us"]
            print(f"run {i + 1}/{args.runs} {config:8} pool {pool:,.0f} µs/job, total {total:,.0f}", flush=True)
    summary = {name: medians([r for r in runs if r["config"] == name]) for name in CONFIGS}
    found: dict[str, Any] = {"runs": runs, "summary": summary}
    if args.profile:
        found["profile"] = profile(args, servers, counters)
    return found


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # so the pool is stopped and the private servers removed on the way out


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``make bench-cpu``."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    load = os.getloadavg()[0]
    with PrivatePostgres() as pg, PrivateRedis() as redis:
        found = measure(args, (pg, redis))
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "n": args.n, "runs": args.runs, "processes": args.processes}
    meta["loadavg_1min"] = {"start": load, "end": os.getloadavg()[0]}
    args.out.write_text(json.dumps({"meta": meta, **found}, indent=2, default=str) + "\n")
    print(
        f"\n{meta['date']} · {args.n:,} no-op jobs · {args.runs} runs each · load {load:.2f} → {os.getloadavg()[0]:.2f}\n"
    )
    print("\n".join([*report(found["summary"]), "", *found.get("profile", [])]))
    print(f"\nresults: {args.out}; pool output: {args.log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
