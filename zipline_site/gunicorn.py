"""gunicorn's settings for the API: ``gunicorn -c python:zipline_site.gunicorn zipline_site.wsgi:application``.

Metrics: each gunicorn worker is a process of its own, so its metric values go to files that the master
sums and serves on a port of their own (``JQS_METRICS_API_PORT``), never on the API's public port; see
:mod:`zipline_site.api_metrics`.
"""

from __future__ import annotations

from typing import Any

from zipline_site.api_metrics import ApiMetrics

_metrics = ApiMetrics.prepare()


def when_ready(server: Any) -> None:
    _metrics.start(server.log)


def post_fork(server: Any, worker: Any) -> None:
    _metrics.forked()


def child_exit(server: Any, worker: Any) -> None:
    """A worker process is gone: its live gauges no longer count (its counters still do)."""
    _metrics.worker_gone(worker.pid)


def on_exit(server: Any) -> None:
    _metrics.stop()
