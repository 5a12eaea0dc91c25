"""The standard services beside the API: health checking and server reflection, asked by real clients."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from jobs.grpc import server
from tests.grpc_support import GrpcServer, grpc_server

pytestmark = pytest.mark.django_db(transaction=True)
__all__ = ["grpc_server"]


def test_health_answers_serving_for_the_server_and_the_api(grpc_server: GrpcServer) -> None:
    health = health_pb2_grpc.HealthStub(grpc_server.channel)
    for service in ("", "zipline.v1.ZipLine"):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING, service
    unknown = pytest.raises(grpc.RpcError, health.Check, health_pb2.HealthCheckRequest(service="nope"), timeout=5)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def test_health_says_not_serving_once_the_server_stops() -> None:
    served = server.start("127.0.0.1:0", threads=2)
    with grpc.insecure_channel(f"127.0.0.1:{served.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        watch = health.Watch(health_pb2.HealthCheckRequest(service="zipline.v1.ZipLine"), timeout=10)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        served.health.enter_graceful_shutdown()
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
    server.stop(served, grace=1)


def _reflect(channel: grpc.Channel, request: reflection_pb2.ServerReflectionRequest) -> object:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    return next(iter(stub.ServerReflectionInfo(iter([request]), timeout=5)))


def test_reflection_lists_the_services_and_describes_the_api(grpc_server: GrpcServer) -> None:
    listed = _reflect(grpc_server.channel, reflection_pb2.ServerReflectionRequest(list_services=""))
    names = {s.name for s in listed.list_services_response.service}  # type: ignore[attr-defined]
    assert {"zipline.v1.ZipLine", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names
    found = _reflect(
        grpc_server.channel, reflection_pb2.ServerReflectionRequest(file_containing_symbol="zipline.v1.ZipLine")
    )
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in found.file_descriptor_response.file_descriptor_proto  # type: ignore[attr-defined]
    ]
    api = next(f for f in files if f.package == "zipline.v1")
    methods = {m.name: m for m in api.service[0].method}
    assert len(methods) == 10 and methods["WatchJob"].server_streaming
    assert methods["SubmitJob"].input_type == ".zipline.v1.SubmitJobRequest"
