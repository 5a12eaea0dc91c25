"""``manage.py rungrpc`` as a real process: it serves on JQS_SERVER_GRPC_PORT, ends cleanly on SIGTERM, and
says in one line why it cannot listen."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from jobs.models import Job
from tests.grpc_support import new_user, pb
from tests.procs import ROOT, free_port, manage, running

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _serving(channel: grpc.Channel, proc: Any, timeout: float = 30.0) -> None:
    """Wait until the server's health check answers SERVING (or fail with its log)."""
    health = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + timeout
    while True:
        if proc.popen.poll() is not None:
            raise AssertionError(f"rungrpc exited with {proc.popen.returncode}:\n{proc.log()[-3000:]}")
        try:
            answer = health.Check(health_pb2.HealthCheckRequest(service="zipline.v1.ZipLine"), timeout=1)
            if answer.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"rungrpc not serving after {timeout}s:\n{proc.log()[-3000:]}")
        time.sleep(0.1)


def test_rungrpc_serves_and_exits_cleanly_on_sigterm(broker: Any, tmp_path: Path) -> None:
    from jobs.grpc.proto.zipline.v1 import zipline_pb2_grpc as pb_grpc
    from jobs.tokens import create_token

    port = free_port()
    token = create_token(new_user(superuser=True))
    metadata = [("authorization", f"Bearer {token}")]
    with running(["rungrpc"], tmp_path, JQS_SERVER_HOST="127.0.0.1", JQS_SERVER_GRPC_PORT=port) as proc:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            _serving(channel, proc)
            stub = pb_grpc.ZipLineStub(channel)
            request = pb.SubmitJobRequest(job=pb.JobSpec(type="send_email", payload='{"email": "a@example.com"}'))
            job = stub.SubmitJob(request, metadata=metadata, timeout=10).job
            watch = stub.WatchJob(pb.WatchJobRequest(id=job.id), metadata=metadata, timeout=60)
            assert next(watch).status == "pending"
            started = time.monotonic()
            proc.signal(signal.SIGTERM)
            assert proc.wait(30) == 0, proc.log()[-3000:]
            # The watch under way is ended by the stop (to be watched again elsewhere), not waited for.
            assert time.monotonic() - started < 5
            with pytest.raises(grpc.RpcError) as ended:
                list(watch)
            assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
    assert Job.objects.filter(pk=job.id).exists()
    assert f"127.0.0.1:{port}" in proc.log()


def test_the_compose_healthcheck_asks_a_running_server(broker: Any, tmp_path: Path) -> None:
    """docker-compose.yml's healthcheck of the grpc service, run as written (on this test's port)."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    test = compose["services"]["grpc"]["healthcheck"]["test"]
    assert test[0] == "CMD" and "127.0.0.1:9090" in test[-1]
    port = free_port()
    command = [sys.executable, *test[2:-1], test[-1].replace("127.0.0.1:9090", f"127.0.0.1:{port}")]
    assert subprocess.run(command, capture_output=True, timeout=30, check=False).returncode == 1  # nothing there
    with running(["rungrpc"], tmp_path, JQS_SERVER_HOST="127.0.0.1", JQS_SERVER_GRPC_PORT=port) as proc:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            _serving(channel, proc)
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr


def test_rungrpc_says_in_one_line_when_the_port_is_taken(broker: Any) -> None:
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = manage("rungrpc", JQS_SERVER_HOST="127.0.0.1", JQS_SERVER_GRPC_PORT=port)
    assert done.returncode == 2, done.stderr
    # gRPC's core logs a line of its own before it; ours is the last, and nothing else.
    assert done.stderr.strip().splitlines()[-1].startswith(f"rungrpc: cannot listen on 127.0.0.1:{port}")
    assert "Traceback" not in done.stderr


def test_rungrpc_starts_without_the_database_and_redis_and_says_unavailable(tmp_path: Path) -> None:
    from jobs.grpc.proto.zipline.v1 import zipline_pb2_grpc as pb_grpc

    port, nowhere = free_port(), free_port()
    with running(
        ["rungrpc"],
        tmp_path,
        JQS_SERVER_HOST="127.0.0.1",
        JQS_SERVER_GRPC_PORT=port,
        JQS_DATABASE_URL=f"postgres://postgres@127.0.0.1:{nowhere}/nothing",
        JQS_REDIS_URL=f"redis://127.0.0.1:{nowhere}/0",
    ) as proc:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            _serving(channel, proc)
            stub = pb_grpc.ZipLineStub(channel)
            metadata = [("authorization", "Bearer " + "a" * 40)]
            with pytest.raises(grpc.RpcError) as refused:
                stub.GetSystemStats(pb.GetSystemStatsRequest(), metadata=metadata, timeout=30)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, refused.value
        proc.signal(signal.SIGTERM)
        assert proc.wait(30) == 0
