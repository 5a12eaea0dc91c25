"""``python manage.py rungrpc [--threads N] [--grace SECONDS]``: serve the gRPC API until SIGTERM or SIGINT.

Thin: the server is :mod:`jobs.grpc.server`. It listens on ``JQS_SERVER_HOST``:``JQS_SERVER_GRPC_PORT``.
The first stop signal stops taking calls and lets those under way finish within ``--grace`` seconds (exit 0);
a second one exits at once.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from jobs.grpc import server
from zipline_site.exit_codes import ExitCode


class Command(BaseCommand):
    help = "Serve the gRPC API (jobs, statistics, WatchJob, health, reflection) on JQS_SERVER_GRPC_PORT."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--config", help="YAML configuration file (JQS_CONFIG)")
        parser.add_argument("--threads", type=int, default=server.DEFAULT_THREADS, help="calls served at once")
        parser.add_argument("--grace", type=float, default=10.0, help="seconds the calls under way get at a stop")

    def handle(self, *args: Any, **options: Any) -> None:
        config = settings.ZIPLINE.server
        address = server.listen_address(config.host, config.grpc_port)
        try:
            served = server.start(address, threads=max(1, options["threads"]))
        except OSError as exc:
            sys.stderr.write(f"rungrpc: {exc}\n")
            raise SystemExit(ExitCode.CONFIG) from None
        stopping = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            if stopping.is_set():
                raise SystemExit(ExitCode.FAILURE)
            stopping.set()

        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, on_signal)
        self.stdout.write(f"gRPC API on {address} (port {served.port})")
        self.stdout.flush()
        while not stopping.wait(1.0):
            pass
        server.stop(served, options["grace"])
