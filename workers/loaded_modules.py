"""Which modules a process of the pool loaded: a debug hook for the tests and ``bench/startup_memory.py``.

The workers must not load the API's, the admin's or the dashboard's code (start-up time and memory);
only the running process itself can say what it imported, so when ``ZIPLINE_MODULES_REPORT_DIR`` names a
directory, each process writes there the names in ``sys.modules`` as it exits (everything it loaded in
its life, also lazily). Not a setting: unset, it costs one environment lookup per process.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPORT_DIR_ENV = "ZIPLINE_MODULES_REPORT_DIR"


def report(role: str) -> None:
    """Write ``<role>-<pid>.txt`` (one module name a line) into the report directory, if one is set."""
    directory = os.environ.get(REPORT_DIR_ENV)
    if not directory:
        return
    names = sorted(sys.modules)
    (Path(directory) / f"{role}-{os.getpid()}.txt").write_text("\n".join(names) + "\n")
