"""Outcomes the database cannot store as they are (NaN, NUL characters) must not wedge a worker.

PostgreSQL refuses NaN in JSON and NUL in text; a batch that carries one would fail the same way
on every retry, and with it every other outcome of that batch.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from jobs import client
from jobs.broker import Broker
from jobs.models import Job, Status
from tests.helpers import wait_for
from tests.procs import running

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_outcomes_the_database_refuses_are_stored_flagged_and_the_rest_still_recorded(
    broker: Broker, tmp_path: Path
) -> None:
    odd = [
        client.enqueue("test_return", {"number": "nan"}),
        client.enqueue("test_return", {"number": "inf"}),
        client.enqueue("test_return", {"text": "a<NUL>b"}),
        client.enqueue("test_return", {"raise": "bad<NUL>byte"}),
    ]
    plain = [client.enqueue("test_noop", {"i": i}) for i in range(20)]
    with running(["runworkers", "--processes", "1", "--concurrency", "8"], tmp_path) as pool:
        ids = [j.pk for j in odd + plain]
        wait_for(
            lambda: Job.objects.filter(pk__in=ids, status__in=[Status.COMPLETED, Status.FAILED]).count() == len(ids),
            30, 0.1, "every job ended",
        )  # fmt: skip
        pool.signal(signal.SIGTERM)
        assert pool.wait(20) == 0
    nan, inf, nul, raised = (Job.objects.get(pk=j.pk) for j in odd)
    for job in (nan, inf, nul):
        assert job.status == Status.COMPLETED
        result = job.result or {}
        assert result.get("truncated") is True and "not JSON" in result.get("error", ""), result
    assert raised.status in (Status.FAILED, Status.RETRYING) and "bad" in raised.error and "\x00" not in raised.error


def test_an_outcome_the_database_still_refuses_fails_alone_with_the_reason(broker: Broker, tmp_path: Path) -> None:
    """A lone surrogate passes the result checks but not PostgreSQL's jsonb: its batch is refused.
    The batch is then recorded one by one, and that one outcome as a permanent failure."""
    refused = client.enqueue("test_return", {"text": "<SUR>"})
    plain = [client.enqueue("test_noop", {"i": i}) for i in range(10)]
    with running(["runworkers", "--processes", "1", "--concurrency", "8"], tmp_path) as pool:
        ids = [j.pk for j in [refused, *plain]]
        wait_for(
            lambda: Job.objects.filter(pk__in=ids, status__in=[Status.COMPLETED, Status.FAILED]).count() == len(ids),
            30, 0.1, "every job ended",
        )  # fmt: skip
        assert "recording them one by one" in pool.log()
    row = Job.objects.get(pk=refused.pk)
    assert row.status == Status.FAILED and row.error.startswith("the outcome could not be stored"), row.error
    assert Job.objects.filter(pk__in=[j.pk for j in plain], status=Status.COMPLETED).count() == len(plain)
