"""The gRPC API's tests share these: a real server on a free port in this process, and real clients.

The server's threads open their own database connections, so the tests that use it are transactional
(committed rows). Connections are closed after each call here (CONN_MAX_AGE 0 while the server runs), so
none outlives the test and holds the test database open.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from django.db import connection
from grpc_status import rpc_status

from jobs.grpc import server
from jobs.grpc.proto.zipline.v1 import zipline_pb2 as pb
from jobs.grpc.proto.zipline.v1 import zipline_pb2_grpc as pb_grpc

__all__ = ["GrpcServer", "call_error", "grpc_server", "new_user", "pb", "stub_for", "violations"]


@dataclass
class GrpcServer:
    address: str
    channel: Any
    served: server.Served

    def stub(self, token: str | None = None) -> Stub:
        return Stub(pb_grpc.ZipLineStub(self.channel), token)


class Stub:
    """The generated stub, sending ``authorization: Bearer <token>`` with every call (none without a token)."""

    def __init__(self, stub: Any, token: str | None) -> None:
        self._stub = stub
        self.metadata = [("authorization", f"Bearer {token}")] if token else []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._stub, name)

        def call(request: Any, **kwargs: Any) -> Any:
            return method(request, metadata=self.metadata, timeout=kwargs.pop("timeout", 10), **kwargs)

        return call


@contextmanager
def serving(threads: int, conn_max_age: int) -> Iterator[GrpcServer]:
    """The gRPC API on a free port of 127.0.0.1 with ``threads`` threads, its connections kept
    ``conn_max_age`` seconds, and a channel to it; stopped at the end of the block."""
    saved = connection.settings_dict.get("CONN_MAX_AGE")
    connection.settings_dict["CONN_MAX_AGE"] = conn_max_age
    served = server.start("127.0.0.1:0", threads=threads)
    address = f"127.0.0.1:{served.port}"
    channel = grpc.insecure_channel(address)
    try:
        yield GrpcServer(address, channel, served)
    finally:
        channel.close()
        server.stop(served, grace=5)
        connection.settings_dict["CONN_MAX_AGE"] = saved


@pytest.fixture
def grpc_server(broker: object) -> Iterator[GrpcServer]:
    """The gRPC API on a free port of 127.0.0.1, with a channel to it; stopped after the test."""
    with serving(threads=8, conn_max_age=0) as served:
        yield served


def stub_for(grpc_server: GrpcServer, user: Any) -> Stub:
    """A stub that sends a new API token of ``user``."""
    from jobs.tokens import create_token

    return grpc_server.stub(create_token(user))


def new_user(*roles: str, superuser: bool = False) -> Any:
    from django.contrib.auth.models import User

    from jobs.roles import grant_role

    name = f"grpc-{uuid.uuid4().hex[:8]}"
    user = User.objects.create_superuser(name) if superuser else User.objects.create_user(name)
    for role in roles:
        grant_role(user, role)
    return user


def call_error(call: Any, *args: Any, **kwargs: Any) -> grpc.RpcError:
    """The error ``call(*args)`` ends with (the test fails if it succeeds)."""
    try:
        call(*args, **kwargs)
    except grpc.RpcError as exc:
        return exc
    raise AssertionError(f"{call} succeeded; an error was expected")


def violations(error: grpc.RpcError) -> dict[str, str]:
    """The field violations of a rich INVALID_ARGUMENT status: field -> description."""
    from google.rpc import error_details_pb2

    status = rpc_status.from_call(error)
    assert status is not None, f"no rich status in {error}"
    found: dict[str, str] = {}
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found.update({v.field: v.description for v in bad.field_violations})
    return found
