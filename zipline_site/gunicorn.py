"""gunicorn's settings for the API: ``gunicorn -c python:zipline_site.gunicorn zipline_site.wsgi:application``.

Each gunicorn worker is a process of its own, so without prometheus_client's multiprocess mode a
scrape of ``/metrics`` shows the counters of whichever worker answered it. Here the master makes a
fresh directory for the workers' metric files before it forks them (prometheus_client reads the
variable when it is first imported, which is in the workers), django-prometheus's view sums the
files, a dead worker's live gauges are dropped, and the directory goes when the master exits.
A ``PROMETHEUS_MULTIPROC_DIR`` set from outside is used as it is (and left in place).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from typing import Any

from zipline_site.config import EXIT_CONFIG_ERROR, ConfigError, load_config, server_address

# The address: JQS_SERVER_HOST and JQS_SERVER_PORT (or the YAML file), as every other setting. A --bind
# flag still wins, as gunicorn's flags win over its config file.
try:
    bind = [server_address(load_config())]
except ConfigError as exc:  # one line and status 2, as every ZipLine command (SystemExit passes gunicorn by)
    sys.stderr.write(f"zipline: configuration error: {exc}\n")
    raise SystemExit(EXIT_CONFIG_ERROR) from None

_made_here: str | None = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _made_here = tempfile.mkdtemp(prefix="zipline-api-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _made_here


def child_exit(server: Any, worker: Any) -> None:
    """A worker process is gone: its live gauges no longer count (its counters still do)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    if _made_here is not None:
        shutil.rmtree(_made_here, ignore_errors=True)
