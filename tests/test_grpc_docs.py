"""docs/grpc.md's Python client runs as written, against a gRPC server and real workers, and prints what
its comments say."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from jobs.tokens import create_token
from tests.grpc_support import GrpcServer, grpc_server, new_user
from tests.procs import running, wait_for_workers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
__all__ = ["grpc_server"]

DOC = Path(__file__).resolve().parent.parent / "docs" / "grpc.md"


def test_the_python_client_example_runs(
    grpc_server: GrpcServer, broker: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    [example] = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    monkeypatch.setenv("ZIPLINE_GRPC", grpc_server.address)
    monkeypatch.setenv("ZIPLINE_TOKEN", create_token(new_user(superuser=True)))
    with running(["runworkers", "--processes", "1", "--concurrency", "2", "--queues", "emails"], tmp_path) as pool:
        wait_for_workers(broker, 1, proc=pool)
        exec(compile(example, str(DOC), "exec"), {"__name__": "grpc_doc_example"})  # noqa: S102
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(" pending")
    changes = lines[1:-3]  # what the watch saw of the job's life (a short state may pass unseen)
    assert changes[-1] == "completed 1" and set(changes) <= {"pending 0", "running 1", "completed 1"}
    assert lines[-3] != "None"  # the job's result
    assert lines[-2].split()[0] == "1"  # one completed in the queue
    assert lines[-1].startswith("StatusCode.INVALID_ARGUMENT {'priority': ")
    assert "StatusCode.INVALID_ARGUMENT {'priority': " in DOC.read_text()
    shown = re.search(r"# StatusCode.INVALID_ARGUMENT (\{.*\})", DOC.read_text())
    assert shown is not None and lines[-1] == f"StatusCode.INVALID_ARGUMENT {shown.group(1)}"
