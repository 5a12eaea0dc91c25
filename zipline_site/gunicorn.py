"""gunicorn's settings for the API: ``gunicorn -c python:zipline_site.gunicorn zipline_site.asgi:application``.

Workers: uvicorn's (an event loop per process, :mod:`zipline_site.asgi`), so that a request waiting on a
job (``?wait=30s``) holds a connection, not a thread. The rest of the API runs on ``threads`` threads per
process (``--threads``, 4 unless given), as gunicorn's thread workers ran it.

Metrics: each gunicorn worker is a process of its own, so its metric values go to files that the master
sums and serves on a port of their own (``JQS_METRICS_API_PORT``), never on the API's public port; see
:mod:`zipline_site.api_metrics`.
"""

from __future__ import annotations

import sys
from typing import Any

from zipline_site.api_metrics import ApiMetrics
from zipline_site.config import EXIT_CONFIG_ERROR, ConfigError, load_config, server_address

# The address: JQS_SERVER_HOST and JQS_SERVER_PORT (or the YAML file), as every other setting. A --bind
# flag still wins, as gunicorn's flags win over its config file.
try:
    bind = [server_address(load_config())]
except ConfigError as exc:  # one line and status 2, as every ZipLine command (SystemExit passes gunicorn by)
    sys.stderr.write(f"zipline: configuration error: {exc}\n")
    raise SystemExit(EXIT_CONFIG_ERROR) from None

worker_class = "zipline_site.asgi_worker.ApiWorker"
threads = 4

_metrics = ApiMetrics.prepare()


def when_ready(server: Any) -> None:
    _metrics.start(server.log)


def post_fork(server: Any, worker: Any) -> None:
    from zipline_site import wsgi_bridge

    wsgi_bridge.configure(worker.cfg.threads)  # before the worker loads zipline_site.asgi
    _metrics.forked()


def child_exit(server: Any, worker: Any) -> None:
    """A worker process is gone: its live gauges no longer count (its counters still do)."""
    _metrics.worker_gone(worker.pid)


def on_exit(server: Any) -> None:
    _metrics.stop()
