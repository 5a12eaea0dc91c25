"""The Redis Cluster of a whole test run (``make test-cluster``: ``ZIPLINE_TEST_REDIS=cluster``).

tests/settings.py starts it before Django reads its settings, in a child process (``python -m
tests.redis_cluster``) that stops the cluster when this run's end closes its stdin, or when the run dies.
The processes the tests start inherit its URL (``ZIPLINE_TEST_CLUSTER_URL``) and start none of their own.
"""

from __future__ import annotations

import atexit
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_children: list[subprocess.Popen[str]] = []


def start_session_cluster() -> str:
    """Start three masters with a replica each under a temporary directory; their ``redis+cluster://`` URL."""
    directory = tempfile.mkdtemp(prefix="zipline-test-cluster-")
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.redis_cluster", directory],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    _children.append(child)
    atexit.register(_stop, child)
    assert child.stdout is not None
    url = child.stdout.readline().strip()  # the child gives up (and exits) after 30 s without a cluster
    if not url.startswith("redis+cluster://"):
        raise RuntimeError(f"the test cluster did not start (exit status {child.wait(30)})")
    return url


def _stop(child: subprocess.Popen[str]) -> None:
    if child.stdin is not None:
        child.stdin.close()
    child.wait(30)
