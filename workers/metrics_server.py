"""Serves the workers' metrics, merged over every worker process, plus queue depths read at scrape time.

:func:`prepare` must run in the supervisor before any worker metric is created: it points
prometheus_client at a fresh multiprocess directory, so each forked worker writes its own file and
a scrape sums them (a scrape after N jobs shows N, whichever process ran them).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

logger = logging.getLogger("zipline.metrics")


def prepare() -> str:
    """Create the multiprocess directory and switch prometheus_client to multiprocess values."""
    directory = tempfile.mkdtemp(prefix="zipline-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    values.ValueClass = values.MultiProcessValue()
    return directory


def cleanup(directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def process_died(pid: int) -> None:
    """Drop a dead worker's live gauges (its counters stay summed)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        mark_process_dead(pid)


class QueueDepthCollector(Collector):
    """``job_queue_pending_jobs`` per queue, read from Redis when Prometheus scrapes."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from jobs.redis_client import get_broker

        family = GaugeMetricFamily("job_queue_pending_jobs", "Jobs ready to run, per queue.", labels=["queue"])
        try:
            broker = get_broker()
            for name in sorted(broker.queue_names()):
                family.add_metric([name], broker.depths(name)["ready"])
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail because Redis is away
            logger.warning("queue depths unavailable", extra={"error": str(exc)})
        yield family


def registry() -> CollectorRegistry:
    merged = CollectorRegistry()
    MultiProcessCollector(merged)
    merged.register(QueueDepthCollector())
    return merged


def serve(host: str, port: int, path: str, health: Any = None) -> ThreadingHTTPServer:
    """Serve ``path`` (metrics) and ``/healthz`` (liveness) on a daemon thread."""
    metrics_registry = registry()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path.split("?")[0] == path:
                body, status, kind = generate_latest(metrics_registry), 200, "text/plain; version=0.0.4"
            elif self.path.split("?")[0] == "/healthz":
                ok = health() if health else True
                body, status, kind = (b"ok\n" if ok else b"unhealthy\n"), (200 if ok else 503), "text/plain"
            else:
                body, status, kind = b"not found\n", 404, "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
