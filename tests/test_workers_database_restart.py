"""F15: PostgreSQL restarts (immediate mode, down for seconds) under a running pool; nothing is lost."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_for
from tests.pg_cluster import PgCluster, available
from tests.procs import ROOT, running

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not available(), reason="needs PostgreSQL's initdb")]


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, timeout=120
    )


def test_pool_rides_out_a_database_restart(own_pg_cluster: PgCluster, broker: Any, tmp_path: Path) -> None:
    cluster = own_pg_cluster
    from tests.procs import process_env

    env = process_env(JQS_DATABASE_URL=cluster.url)
    manage(env, "migrate", "-v", "0")
    enqueue = "from jobs import JobSpec, enqueue_many; enqueue_many([JobSpec('test_sleep', {'seconds': 0.3}) for _ in range(150)])"
    manage(env, "shell", "-c", enqueue)
    counts = "SELECT status, count(*) FROM jobs_job GROUP BY status ORDER BY status"
    with running(
        ["runworkers", "--processes", "2", "--concurrency", "20"], tmp_path, JQS_DATABASE_URL=cluster.url
    ) as pool:
        wait_for(lambda: "completed" in cluster.query(counts), 30, 0.1, "some jobs completed")
        children = set(pool.children())
        cluster.stop("immediate")  # a crash: no checkpoint, connections cut
        time.sleep(3)
        cluster.start()
        cluster.wait_ready()
        try:
            wait_for(lambda: cluster.query(counts) == "completed|150", 90, 0.2, "all 150 jobs completed")
        except AssertionError as exc:
            left = cluster.query("SELECT id, status, attempts, worker FROM jobs_job WHERE status <> 'completed'")
            raise AssertionError(f"{exc}; by status: {cluster.query(counts)!r}; left: {left}") from None
        assert set(pool.children()) == children, "worker processes crashed instead of waiting for the database"
        assert "database unavailable" in pool.log()
    assert cluster.query("SELECT count(*) FROM jobs_job WHERE status = 'running'") == "0"
    # Every job finished once as completed; attempts lost to the outage were not charged as failures.
    assert cluster.query("SELECT count(*) FROM jobs_jobattempt WHERE outcome = 'completed'") == "150"
