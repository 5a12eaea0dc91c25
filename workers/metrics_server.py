"""Serves the workers' metrics, merged over every worker process, plus queue depths read at scrape time.

:func:`prepare` must run in the supervisor before any worker metric is created: it points
prometheus_client at a fresh multiprocess directory, so each forked worker writes its own file and
a scrape sums them (a scrape after N jobs shows N, whichever process ran them).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
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
    """Read from Redis when Prometheus scrapes, every queue in one round trip (``Broker.flow_stats``):
    ``job_queue_pending_jobs`` per queue (every lane of a flow queue), ``job_queue_limited_running_jobs``
    per flow queue (the jobs holding its concurrency slot, across every host), and with
    ``group_labels`` (``JQS_METRICS_GROUP_LABELS``) ``job_queue_limited_group_running_jobs`` per group."""

    def __init__(self, group_labels: bool = False) -> None:
        self.group_labels = group_labels

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from jobs.broker import get_broker
        from jobs.limits import lane_parts

        pending = GaugeMetricFamily("job_queue_pending_jobs", "Jobs ready to run, per queue.", labels=["queue"])
        running = GaugeMetricFamily(
            "job_queue_limited_running_jobs",
            "Jobs running against a flow queue's limits (docs/flow-control.md), across every worker host.",
            labels=["queue"],
        )
        groups = GaugeMetricFamily(
            "job_queue_limited_group_running_jobs", "Jobs running per group of a flow queue.", labels=["queue", "group"]
        )
        try:
            broker = get_broker()
            for name, stats in sorted(broker.flow_stats(sorted(broker.queue_names())).items()):
                pending.add_metric([name], stats.waiting)
                if stats.flow:
                    running.add_metric([name], stats.queue_running)
                    by_group: dict[str, int] = {}
                    for lane, n in stats.running:
                        group = lane_parts(lane)[0]
                        by_group[group] = by_group.get(group, 0) + n
                    for group, n in sorted(by_group.items()):
                        if self.group_labels and group:
                            groups.add_metric([name, group], n)
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail because Redis is away
            logger.warning("queue depths unavailable", extra={"error": str(exc)})
        yield pending
        yield running
        if self.group_labels:
            yield groups


def registry(group_labels: bool = False) -> CollectorRegistry:
    """The workers' view: every worker process's values summed, and the queue depths and running jobs."""
    merged = multiprocess_registry()
    merged.register(QueueDepthCollector(group_labels))
    return merged


def multiprocess_registry() -> CollectorRegistry:
    """The values every process wrote to ``PROMETHEUS_MULTIPROC_DIR``, summed (live gauges of live ones)."""
    merged = CollectorRegistry()
    MultiProcessCollector(merged)
    return merged


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


def serve(
    host: str, port: int, path: str, metrics: CollectorRegistry, health: Callable[[], bool] | None = None
) -> ThreadingHTTPServer:
    """Serve ``metrics`` at ``path`` (and ``/healthz`` when ``health`` is given) on a daemon thread.

    Raises OSError when ``host:port`` cannot be listened on (see :func:`unavailable`).
    """

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path.split("?")[0] == path:
                body, status, kind = generate_latest(metrics), 200, "text/plain; version=0.0.4"
            elif self.path.split("?")[0] == "/healthz" and health is not None:
                ok = health()
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

    server = (_Server6 if ":" in host else _Server)((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server


def unavailable(what: str, host: str, port: int, setting: str, exc: OSError) -> str:
    """The one line that says an endpoint could not listen, and what to change; the caller goes on."""
    reason = "is taken" if exc.errno == errno.EADDRINUSE else f"cannot be listened on ({exc.strerror or exc})"
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"{what}: {where} {reason}; serving no metrics here, carrying on (give this one its own {setting})"
