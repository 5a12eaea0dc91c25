"""The gRPC server: ZipLine's API, the standard health service and server reflection on one port.

Plaintext HTTP/2, as the REST API's gunicorn serves plain HTTP: TLS ends in front of it (a proxy, an ingress
or a service mesh), see docs/grpc.md. Each call runs on one of a pool of threads; a WatchJob holds its
thread while it lasts, so the pool bounds the watches too.

The health service answers SERVING for ``""`` and ``zipline.v1.ZipLine`` from the start, and NOT_SERVING
from the first stop signal, while the calls under way finish and the watches end (:func:`stop`).
"""

from __future__ import annotations

import logging
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from jobs.api.views import BATCH_MAX_BODY_BYTES
from jobs.grpc.proto.zipline.v1 import zipline_pb2 as pb
from jobs.grpc.proto.zipline.v1 import zipline_pb2_grpc as pb_grpc
from jobs.grpc.servicer import ZipLineServicer

logger = logging.getLogger("zipline.grpc")

SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["ZipLine"].full_name
#: A message may be as large as a REST body may (a batch of jobs).
OPTIONS = (
    ("grpc.max_receive_message_length", BATCH_MAX_BODY_BYTES),
    ("grpc.max_send_message_length", BATCH_MAX_BODY_BYTES),
)
DEFAULT_THREADS = 32


@dataclass
class Served:
    """A started server, its health service, and the port it listens on (the one asked for, or a free one for 0)."""

    server: Any
    health: Any
    port: int
    servicer: ZipLineServicer


def listen_address(host: str, port: int) -> str:
    """``host:port`` as gRPC takes it (an IPv6 host in brackets)."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def start(address: str, threads: int = DEFAULT_THREADS) -> Served:
    """Listen on ``address`` and serve until :func:`stop`; raises :class:`OSError` when the address cannot be bound."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="grpc"), options=OPTIONS)
    servicer = ZipLineServicer()
    pb_grpc.add_ZipLineServicer_to_server(servicer, server)
    checks = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as exc:  # grpcio raises this when the port cannot be bound
        raise OSError(f"cannot listen on {address}: {exc}") from None
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    server.start()
    for name in ("", SERVICE_NAME):
        checks.set(name, health_pb2.HealthCheckResponse.SERVING)
    logger.info("gRPC API listening", extra={"address": address, "port": port, "threads": threads})
    return Served(server, checks, port, servicer)


def stop(served: Served, grace: float) -> None:
    """Answer NOT_SERVING, refuse new calls, end the watches (UNAVAILABLE: a client watches again elsewhere),
    and give the other calls under way ``grace`` seconds to finish."""
    served.health.enter_graceful_shutdown()
    stopped = served.server.stop(grace)
    served.servicer.stop_watches()
    stopped.wait()
