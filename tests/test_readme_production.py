"""The README's "Production" steps as written, then its first REST example: the job it submits completes,
and the gRPC API the steps start reads it back.

Each command runs as the README writes it, with this virtualenv's ``python`` and ``gunicorn``. The values
of the README's ``export`` line are the test's own (its database and Redis, a secret); the test adds only
what keeps it off other tests' ground: a Redis key prefix, free ports for the APIs (the README's gunicorn
binds ``JQS_SERVER_HOST:JQS_SERVER_PORT``, rungrpc ``JQS_SERVER_GRPC_PORT``), a state directory, and no
metrics ports.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.helpers import wait_for
from tests.procs import ROOT, database_url, free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

README = ROOT / "README.md"
BIN = Path(sys.executable).parent


def _section(title: str, end: str) -> str:
    text = README.read_text()
    return text[text.index(title) : text.index(end)]


def _production_steps() -> list[str]:
    """The README's production commands, without their comments."""
    [block] = re.findall(r"```sh\n(.*?)```", _section("## Production", "## Submitting jobs"), flags=re.DOTALL)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def _submit_curl() -> str:
    """The README's first REST example: the submit (a command over several lines)."""
    [block] = re.findall(r"```sh\n(.*?)```", _section("### Over REST", "## Custom processors"), flags=re.DOTALL)
    return block.split("\ncurl ")[0].replace("\\\n", " ")


@contextmanager
def _started(command: str, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A long-running step, killed with its process group at the end."""
    with log.open("wb") as out:
        popen = subprocess.Popen(
            _argv(command), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield popen
    finally:
        try:
            os.killpg(popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        popen.wait(timeout=10)


def _argv(command: str) -> list[str]:
    words = shlex.split(command)
    if words[0] in ("python", "gunicorn"):
        words[0] = sys.executable if words[0] == "python" else str(BIN / "gunicorn")
    return words


def test_the_production_steps_work_as_written_and_run_the_rest_example(tmp_path: Path) -> None:
    steps = _production_steps()
    assert steps[0] == "pip install -r requirements.txt"  # this virtualenv has them
    exported = shlex.split(steps[1])
    assert exported[0] == "export"
    assert [word.split("=", 1)[0] for word in exported[1:]] == ["JQS_SECRET_KEY", "JQS_DATABASE_URL", "JQS_REDIS_URL"]
    port, grpc_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JQS_", "DJANGO_", "ZIPLINE_"))}
    env.update(
        JQS_SECRET_KEY=f"readme-production-{uuid.uuid4().hex}{uuid.uuid4().hex}",
        JQS_DATABASE_URL=database_url(),
        JQS_REDIS_URL=str(settings.REDIS_URL),
        JQS_REDIS_KEY_PREFIX=settings.ZIPLINE.redis.key_prefix,
        JQS_SERVER_HOST="127.0.0.1",
        JQS_SERVER_PORT=str(port),
        JQS_SERVER_GRPC_PORT=str(grpc_port),
        JQS_METRICS_ENABLED="false",
        JQS_STATE_DIR=str(tmp_path),
        PYTHONUNBUFFERED="1",
    )
    migrate, api, grpc_api, workers, scheduler, createtoken = steps[2:]
    assert (migrate, createtoken) == ("python manage.py migrate", "python manage.py createtoken alice --operator")
    assert grpc_api == "python manage.py rungrpc"

    def run(command: str) -> str:
        done = subprocess.run(_argv(command), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{command}:\n{done.stderr[-3000:]}"
        return done.stdout

    run(migrate)
    with ExitStack() as stack:
        started = {
            name: stack.enter_context(_started(command, env, tmp_path / f"{name}.log"))
            for name, command in (("api", api), ("grpc", grpc_api), ("workers", workers), ("scheduler", scheduler))
        }

        def up(name: str) -> None:
            if started[name].poll() is not None:
                raise AssertionError(f"{name} exited:\n{(tmp_path / f'{name}.log').read_text()[-3000:]}")

        token = run(createtoken).strip()
        curl_env = {**env, "TOKEN": token}
        base = f"http://localhost:{port}"

        def curl(command: str) -> Any:
            up("api")
            command = command.replace("http://localhost:8080", base).replace("curl ", "curl -sS ", 1)
            done = subprocess.run(["bash", "-c", command], env=curl_env, capture_output=True, text=True, timeout=30)
            return json.loads(done.stdout) if done.returncode == 0 and done.stdout else None

        wait_for(lambda: (curl(f"curl {base}/health") or {}).get("status") == "ok", 60, 0.2, "the API to answer")
        submitted = curl(_submit_curl())
        assert submitted and submitted.get("status") == "pending", submitted
        read = f'curl -H "Authorization: Bearer $TOKEN" {base}/api/v1/jobs/{submitted["id"]}'

        def completed() -> bool:
            for name in started:
                up(name)
            return bool((curl(read) or {}).get("status") == "completed")

        waited = curl(f'curl -H "Authorization: Bearer $TOKEN" "{base}/api/v1/jobs/{submitted["id"]}?wait=25s"') or {}
        assert waited.get("status") == "completed", f"the README's job (queue {submitted['queue']!r}): {waited}"
        wait_for(completed, 30, 0.2, f"the README's job (queue {submitted['queue']!r}) to complete: {curl(read)}")
        assert _read_over_grpc(grpc_port, token, submitted["id"]) == "completed"


def _read_over_grpc(port: int, token: str, job_id: str) -> str:
    """The job's status as the gRPC API answers it (waiting for the server to listen)."""
    import grpc

    from jobs.grpc.proto.zipline.v1 import zipline_pb2 as pb
    from jobs.grpc.proto.zipline.v1 import zipline_pb2_grpc as pb_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        request = pb.GetJobRequest(id=job_id)
        job = pb_grpc.ZipLineStub(channel).GetJob(
            request, metadata=[("authorization", f"Bearer {token}")], timeout=30, wait_for_ready=True
        )
    return str(job.status)
