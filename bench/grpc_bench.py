"""gRPC unary SubmitJob against REST's single submit (``POST /api/v1/jobs``), the same job, the same machine.

Run: ``.venv/bin/python bench/grpc_bench.py`` (``make bench-grpc``; needs ``wrk`` and ``h2load``:
``apt-get install wrk nghttp2-client``). Both servers run on 2 processes, as bench/api_bench.py's gunicorn
(2 workers): two ``manage.py rungrpc`` on one port (gRPC's core sets SO_REUSEPORT, so the kernel spreads
connections over them). Both are driven by a client written in C with 16 connections and one request in
flight on each: REST by wrk, gRPC by h2load (nghttp2's HTTP/2 load generator) posting the same SubmitJob
message as a gRPC frame with the ``authorization`` metadata. h2load counts any HTTP 200 as a success, and
gRPC answers its errors with 200 and a ``grpc-status`` trailer, so each gRPC run counts the jobs it stored
and reports as ``errors`` the answered calls that stored none. ``--python-client`` adds a named row where 16
Python clients (a channel each, on one asyncio loop of this process) drive gRPC instead: the client then
costs the shared 2 cores more than wrk does.

Two rounds, interleaved; the best of each is kept, with the servers' CPU time per request (their process
groups' user + system time, which other load on the machine moves less than the rate). Prints one JSON line
per workload and the ratio, and writes ``bench/results/grpc.json``. Its own database ``zipline_grpc_bench``
and Redis db 11 under the prefix ``zipbench-grpc``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import api_bench  # noqa: E402
from bench.tools import ensure_tool  # noqa: E402

DB = "zipline_grpc_bench"
SERVICE = "zipline.v1.ZipLine"
ENV = {
    **api_bench.ENV,
    "JQS_DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB}",
    "JQS_REDIS_KEY_PREFIX": "zipbench-grpc",
}


def serve_grpc(port: int, processes: int) -> list[subprocess.Popen[bytes]]:
    """``processes`` rungrpc processes on ``port``, once each answers its health check."""
    env = {**ENV, "JQS_SERVER_HOST": "127.0.0.1", "JQS_SERVER_GRPC_PORT": str(port)}
    servers = [
        subprocess.Popen([sys.executable, "manage.py", "rungrpc"], cwd=ROOT, env=env, start_new_session=True,
                         stdout=subprocess.DEVNULL)
        for _ in range(processes)
    ]  # fmt: skip
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + 30
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=1)
                time.sleep(1.0)  # the other processes start alike; give them a moment to listen
                return servers
            except grpc.RpcError:
                time.sleep(0.2)
    raise SystemExit("rungrpc did not start")


def check_submit(address: str, token: str) -> None:
    """One real SubmitJob with the bench's token and message, so that a refusal stops the bench saying why."""
    import grpc

    from jobs.grpc.proto.zipline.v1 import zipline_pb2 as pb
    from jobs.grpc.proto.zipline.v1 import zipline_pb2_grpc as pb_grpc

    request = pb.SubmitJobRequest.FromString(grpc_frame()[5:])
    with grpc.insecure_channel(address) as channel:
        try:
            pb_grpc.ZipLineStub(channel).SubmitJob(
                request, metadata=(("authorization", f"Bearer {token}"),), timeout=10
            )
        except grpc.RpcError as exc:
            raise SystemExit(f"SubmitJob refused the bench's call: {exc.code()} {exc.details()}") from None


async def _drive(address: str, token: str, clients: int, seconds: float) -> dict[str, float]:
    import grpc

    from jobs.grpc.proto.zipline.v1 import zipline_pb2 as pb
    from jobs.grpc.proto.zipline.v1 import zipline_pb2_grpc as pb_grpc

    single: dict[str, Any] = api_bench.SINGLE
    job = pb.JobSpec(
        type=single["type"], payload=json.dumps(single["payload"]), queue=single["queue"], priority=single["priority"]
    )
    request = pb.SubmitJobRequest(job=job)
    metadata = (("authorization", f"Bearer {token}"),)
    latencies: list[float] = []
    errors = 0
    channels = [grpc.aio.insecure_channel(address) for _ in range(clients)]
    stop = time.monotonic() + seconds

    async def client(channel: Any) -> None:
        nonlocal errors
        submit = pb_grpc.ZipLineStub(channel).SubmitJob
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                await submit(request, metadata=metadata, timeout=10)
            except grpc.aio.AioRpcError:
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)

    for channel in channels:
        await channel.channel_ready()
    began = time.monotonic()
    await asyncio.gather(*(client(channel) for channel in channels))
    elapsed = time.monotonic() - began
    for channel in channels:
        await channel.close()
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)] * 1000 if latencies else float("nan")
    return {"requests_per_second": round(len(latencies) / elapsed), "p99_ms": round(p99, 2), "errors": errors}


def drive_grpc(address: str, token: str, clients: int, seconds: float) -> dict[str, float]:
    return asyncio.run(_drive(address, token, clients, seconds))


def grpc_frame() -> bytes:
    """The bench's SubmitJobRequest as one gRPC message on the wire: a 0 byte (not compressed), its length
    (4 bytes, big-endian), then the message."""
    from jobs.grpc.proto.zipline.v1 import zipline_pb2 as pb

    single: dict[str, Any] = api_bench.SINGLE
    job = pb.JobSpec(
        type=single["type"], payload=json.dumps(single["payload"]), queue=single["queue"], priority=single["priority"]
    )
    message = pb.SubmitJobRequest(job=job).SerializeToString()
    return b"\0" + struct.pack(">I", len(message)) + message


def jobs_stored() -> int:
    """Rows in the bench database's job table: what the calls of a run really created."""
    psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", DB, "-tAc", "SELECT count(*) FROM jobs_job"]
    return int(subprocess.run(psql, check=True, capture_output=True, text=True).stdout)


H2LOAD_DONE = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded")
H2LOAD_MEAN = re.compile(r"time for request:\s+\S+\s+\S+\s+(\S+)")


def _ms(text: str) -> float:
    for unit, scale in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    raise ValueError(f"h2load printed a time I cannot read: {text!r}")


def h2load(url: str, token: str, clients: int, seconds: int) -> dict[str, float]:
    """``clients`` h2load clients, one HTTP/2 connection and one call in flight each, calling SubmitJob.

    h2load counts an HTTP 200 as a success, and gRPC answers its errors with 200 and a ``grpc-status``
    trailer, so the calls that really succeeded are the rows the run added: ``errors`` is the number of
    answered calls that stored no job (calls cut off by the run's end may have stored one, hence the floor).
    """
    with tempfile.NamedTemporaryFile(suffix=".grpc", delete=False) as body:
        body.write(grpc_frame())
    headers = ["content-type: application/grpc", "te: trailers", f"authorization: Bearer {token}"]
    before = jobs_stored()
    out = subprocess.run(
        ["h2load", "-D", str(seconds), "-c", str(clients), "-m", "1", "-d", body.name,
         *(arg for header in headers for arg in ("-H", header)), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    os.unlink(body.name)
    stored = jobs_stored() - before
    done = H2LOAD_DONE.search(out)
    mean = H2LOAD_MEAN.search(out)
    if done is None or mean is None:
        raise SystemExit(f"h2load printed no result:\n{out}")
    _, started, answered, succeeded = (int(n) for n in done.groups())
    ok = min(succeeded, stored)
    return {
        "requests_per_second": round(ok / seconds),
        "mean_ms": round(_ms(mean.group(1)), 2),
        "errors": answered - ok,
        "jobs_stored": stored,
        "calls_started": started,
    }


def group_cpu_seconds(groups: list[int]) -> float:
    """CPU time (user + system) used so far by every process in the process groups ``groups``."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) in groups:  # fields[2] is the process group (the 5th field of stat)
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def measured(drive: Any, seconds: int, groups: list[int]) -> dict[str, float]:
    """``drive()``'s figures plus the servers' CPU milliseconds per request, which the machine's load moves less."""
    before = group_cpu_seconds(groups)
    figures = dict(drive())
    used = group_cpu_seconds(groups) - before
    figures["server_cpu_ms_per_request"] = round(used * 1000 / max(1.0, figures["requests_per_second"] * seconds), 3)
    return figures


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def run_rounds(args: argparse.Namespace, token: str) -> dict[str, list[dict[str, float]]]:
    """Both servers up, then two interleaved rounds of each workload (drift of the machine hits all alike)."""
    rest, grpc_servers = api_bench.serve(args.port, ENV), serve_grpc(args.grpc_port, args.processes)
    rest_url, grpc_address = f"http://127.0.0.1:{args.port}/api/v1/jobs", f"127.0.0.1:{args.grpc_port}"
    grpc_url = f"http://{grpc_address}/{SERVICE}/SubmitJob"
    workloads: dict[str, tuple[Any, list[int]]] = {
        "rest_post_jobs_single": (lambda: api_bench.wrk(rest_url, api_bench.SINGLE, token, args.clients, args.seconds), [rest.pid]),
        "grpc_submit_job": (lambda: h2load(grpc_url, token, args.clients, args.seconds), [s.pid for s in grpc_servers]),
    }  # fmt: skip
    if args.python_client:
        workloads["grpc_submit_job_python_client"] = (
            lambda: drive_grpc(grpc_address, token, args.clients, args.seconds),
            [s.pid for s in grpc_servers],
        )
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in workloads}
    try:
        check_submit(grpc_address, token)
        for _ in range(args.rounds):
            for name, (drive, groups) in workloads.items():
                runs[name].append(measured(drive, args.seconds, groups))
    finally:
        for server in (rest, *grpc_servers):
            os.killpg(server.pid, signal.SIGTERM)
        for server in (rest, *grpc_servers):
            server.wait(timeout=30)
    return runs


def report(runs: dict[str, list[dict[str, float]]], clients: int, load_before: float) -> dict[str, Any]:
    """The best run of each workload and their ratio, printed as JSON lines."""
    summary: dict[str, Any] = {}
    for name, results in runs.items():
        best = max(results, key=lambda r: r["requests_per_second"])
        summary[name] = {**best, "runs": results}
        print(json.dumps({"workload": name, "clients": clients, **best}))
    rest = max(1, summary["rest_post_jobs_single"]["requests_per_second"])
    summary["ratio"] = round(summary["grpc_submit_job"]["requests_per_second"] / rest, 2)
    summary["load_average"] = {"before": load_before, "after": _load()}
    print(json.dumps({"grpc_over_rest": summary["ratio"], "target": 2.0, "load_average": summary["load_average"]}))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--processes", type=int, default=2, help="rungrpc processes (gunicorn runs 2 workers)")
    parser.add_argument("--port", type=int, default=18081)
    parser.add_argument("--grpc-port", type=int, default=19090)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--python-client", action="store_true", help="also drive gRPC from Python clients in this process (a named row)"
    )
    args = parser.parse_args()
    ensure_tool("wrk", "wrk")
    ensure_tool("h2load", "nghttp2-client")
    token = api_bench.prepare(DB, ENV)
    load_before = _load()
    summary = report(run_rounds(args, token), args.clients, load_before)
    out = ROOT / "bench" / "results" / "grpc.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
