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


def test_processors_that_exit_interrupt_or_raise_unprintable_errors_fail_alone(broker: Broker, tmp_path: Path) -> None:
    """sys.exit() in a job, Ctrl-C raised by hand, or an exception whose str() fails: the job fails, and
    the process (its job threads and its event loop) goes on running the next jobs."""
    odd = [
        client.enqueue(job_type, {"how": how}, retry={"max_retries": 0})
        for job_type in ("test_misbehave", "test_async_misbehave")
        for how in ("exit", "interrupt", "unprintable")
    ]
    with running(["runworkers", "--processes", "1", "--concurrency", "4"], tmp_path) as pool:
        wait_for(lambda: Job.objects.filter(pk__in=[j.pk for j in odd], status=Status.FAILED).count() == 6, 30, 0.1)
        after = [client.enqueue("test_async_sleep", {"seconds": 0.01}), client.enqueue("test_noop", {})]
        wait_for(
            lambda: Job.objects.filter(pk__in=[j.pk for j in after], status=Status.COMPLETED).count() == 2,
            30, 0.1, "the jobs after them completed",
        )  # fmt: skip
        pool.signal(signal.SIGTERM)
        assert pool.wait(20) == 0
        assert "crashed" not in pool.log() and len(pool.children()) <= 1
    errors = {(j.type, j.payload["how"]): Job.objects.get(pk=j.pk).error for j in odd}
    assert "SystemExit" in errors[("test_misbehave", "exit")]
    assert "the processor raised SystemExit(3)" in errors[("test_async_misbehave", "exit")]
    assert "KeyboardInterrupt" in errors[("test_async_misbehave", "interrupt")]
    assert errors[("test_misbehave", "unprintable")] == "_Unprintable: <str() of the exception failed: RuntimeError>"
    assert "<str() of the exception failed" in errors[("test_async_misbehave", "unprintable")]
