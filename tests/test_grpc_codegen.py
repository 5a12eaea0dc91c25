"""The generated code checked in beside zipline.proto is what grpcio-tools makes of it now."""

from __future__ import annotations

from pathlib import Path

from jobs.grpc.codegen import GENERATED, ROOT, generate


def test_the_generated_code_matches_the_proto(tmp_path: Path) -> None:
    generate(tmp_path)
    for path in GENERATED:
        fresh, checked_in = (tmp_path / path).read_text(), (ROOT / path).read_text()
        assert fresh == checked_in, f"{path} is stale: run .venv/bin/python -m jobs.grpc.codegen"


def test_every_service_method_is_in_the_generated_code() -> None:
    from jobs.grpc.proto.zipline.v1 import zipline_pb2

    methods = {m.name for m in zipline_pb2.DESCRIPTOR.services_by_name["ZipLine"].methods}
    assert methods == {
        "SubmitJob",
        "SubmitJobs",
        "GetJob",
        "ListJobs",
        "CancelJob",
        "RetryJob",
        "GetQueueStats",
        "GetSystemStats",
        "GetWorkerStats",
        "WatchJob",
    }
