"""The API's Prometheus metrics, served by gunicorn's master on a port of their own, never the API's.

The API's port is public (the load balancer or ingress sends everyone there), and the metrics need no
token, so they are not mounted in the URL map at all. Instead every gunicorn worker writes its values to
files in a multiprocess directory (prometheus_client's multiprocess mode, as the worker pool does), and
the master, which handles no request, sums the files of every worker, live or gone, and serves them on
``JQS_METRICS_HOST:JQS_METRICS_API_PORT`` at ``JQS_METRICS_PATH``. ``JQS_METRICS_ENABLED=false``: nothing
listens. The hooks below are wired in :mod:`zipline_site.gunicorn`.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

from zipline_site.config import Config

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


def _config() -> Config:
    """The configuration, read (and refused in one line, exit 2) as the API's settings read it."""
    settings = importlib.import_module(os.environ.get("DJANGO_SETTINGS_MODULE", "zipline_site.settings"))
    config: Config = settings.ZIPLINE
    return config


@dataclass
class ApiMetrics:
    """One gunicorn master's metrics: the workers' files and the endpoint that sums them."""

    config: Config
    made_dir: str | None = None
    server: ThreadingHTTPServer | None = field(default=None, repr=False)

    @classmethod
    def prepare(cls) -> ApiMetrics:
        """Before any worker is forked: point prometheus_client at a fresh directory (or the one set from
        outside, used as it is and left in place); prometheus_client reads it when first imported."""
        metrics = cls(_config())
        if metrics.config.metrics.enabled and not os.environ.get(MULTIPROC_DIR):
            metrics.made_dir = tempfile.mkdtemp(prefix="zipline-api-metrics-")
            os.environ[MULTIPROC_DIR] = metrics.made_dir
        return metrics

    def start(self, log: Any) -> None:
        """In the master, once it listens: serve the sums; a port that cannot be had is one line, not a stop."""
        if not self.config.metrics.enabled:
            return
        from workers import metrics_server

        host, port = self.config.metrics.host, self.config.metrics.api_port
        try:
            self.server = metrics_server.serve(
                host, port, self.config.metrics.path, metrics_server.multiprocess_registry()
            )
        except OSError as exc:
            log.error(metrics_server.unavailable("API metrics", host, port, "JQS_METRICS_API_PORT", exc))
            return
        log.info("API metrics on http://%s:%d%s", host, port, self.config.metrics.path)

    def forked(self) -> None:
        """In a new worker: it does not serve the master's endpoint, so it lets go of its socket."""
        if self.server is not None:
            self.server.socket.close()
            self.server = None

    def worker_gone(self, pid: int) -> None:
        """A worker exited: its live gauges no longer count (its counters still do)."""
        if self.config.metrics.enabled:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid)

    def stop(self) -> None:
        if self.made_dir is not None:
            shutil.rmtree(self.made_dir, ignore_errors=True)
