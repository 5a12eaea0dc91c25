"""SQLite first-look mode under load: four worker processes and a submitting client, no lock errors (F24)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db import connection

from jobs import JobSpec, enqueue, enqueue_many
from jobs.broker import Broker
from jobs.models import Job, Status
from tests.helpers import wait_for
from tests.procs import running

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.skipif("connection.vendor != 'sqlite'", reason="SQLite first-look mode only")
def test_four_workers_and_a_client_share_sqlite(broker: Broker, tmp_path: Path) -> None:
    assert connection.vendor == "sqlite"
    enqueue_many([JobSpec("test_noop", {"n": i}) for i in range(1000)])
    enqueue_many([JobSpec("test_fail", {}, retry={"max_retries": 1, "initial_delay": "10ms"}) for _ in range(50)])
    with running(["runworkers", "--processes", "4", "--concurrency", "16"], tmp_path) as pool:
        for i in range(300):  # a client submitting while the workers write
            enqueue("test_noop", {"late": i})
        wait_for(lambda: Job.objects.filter(status=Status.COMPLETED).count() == 1300, 120, 0.2, "1,300 completed")
        wait_for(lambda: Job.objects.filter(status=Status.FAILED).count() == 50, 60, 0.2, "50 failed after one retry")
        log = pool.log()
    assert "database is locked" not in log and "Traceback" not in log
