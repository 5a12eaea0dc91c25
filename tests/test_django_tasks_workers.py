"""Django tasks enqueued through ZipLine's backend and run by real worker processes (``runworkers``):
results, errors with tracebacks, timeouts, retries, ``run_after``, priorities, async tasks, the
``task_started`` / ``task_finished`` signals in the worker, and a rolled-back enqueue that never runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.db import transaction
from django.utils import timezone

from jobs.models import Job, JobAttempt
from jobs.tasks_backend.compat import TaskResult, TaskResultStatus, default_task_backend
from tests.helpers import wait_for
from tests.procs import Proc, running, wait_for_workers
from tests.taskapp import tasks
from tests.taskapp.signals import signals_key

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def workers(broker: Any, tmp_path: Path) -> Iterator[Proc]:
    """One worker process with four job threads, its signal receivers recording to Redis."""
    args = ["runworkers", "--processes", "1", "--concurrency", "4"]
    env = {"ZIPLINE_TEST_TASK_SIGNALS": "1", "JQS_WORKER_KILL_GRACE": "300ms"}
    with running(args, tmp_path, "workers", **env) as proc:
        wait_for_workers(broker, 1, proc=proc)
        yield proc


def finished(result: TaskResult, timeout: float = 20.0) -> TaskResult:
    """Wait until the task's result is finished; the result, fetched again."""

    def done() -> TaskResult | None:
        fresh = default_task_backend.get_result(result.id)
        return fresh if fresh.is_finished else None

    return wait_for(done, timeout=timeout, interval=0.05, message=f"task {result.id} to finish")


def signals(broker: Any) -> list[list[str]]:
    return [line.decode().split("|") for line in broker.client.lrange(signals_key(), 0, -1)]


def test_tasks_run_on_the_workers_and_their_results_say_so(broker: Any, workers: Proc) -> None:
    before = timezone.now()
    sync = tasks.echo.enqueue(1, [2], word="three")
    asynchronous = tasks.echo_async.enqueue("a", n=None)
    answer = tasks.calculate_meaning_of_life.enqueue()
    own_id = tasks.get_task_id.enqueue()
    nothing = tasks.noop_async.enqueue()
    for result in (sync, asynchronous, answer, own_id, nothing):
        done = finished(result)
        assert done.status == TaskResultStatus.SUCCESSFUL, done.errors
        assert done.attempts == 1 and done.errors == []
        assert done.worker_ids == [Job.objects.get(pk=result.id).worker] and done.worker_ids[0]
        assert before <= done.enqueued_at <= done.started_at <= done.finished_at
        assert done.last_attempted_at == done.started_at
        result.refresh()
        assert result.status == TaskResultStatus.SUCCESSFUL and result.finished_at == done.finished_at
    worker_pid = workers.children()[0]
    assert tasks.echo.get_result(sync.id).return_value == {
        "args": [1, [2]],
        "kwargs": {"word": "three"},
        "pid": worker_pid,
    }
    echoed = async_to_sync(tasks.echo_async.aget_result)(asynchronous.id).return_value
    assert echoed == {"args": ["a"], "kwargs": {"n": None}, "pid": worker_pid}
    assert answer.return_value == 42
    assert own_id.return_value == own_id.id
    assert nothing.return_value is None
    by_task: dict[str, list[tuple[str, str, str, int]]] = {}
    for name, task_id, status, attempts, pid in signals(broker):
        by_task.setdefault(task_id, []).append((name, status, attempts, int(pid)))
    for result in (sync, asynchronous, answer, own_id, nothing):
        assert by_task[result.id] == [
            ("started", "RUNNING", "1", worker_pid),
            ("finished", "SUCCESSFUL", "1", worker_pid),
        ]


def test_a_task_that_raises_fails_with_its_exception_and_traceback(broker: Any, workers: Proc) -> None:
    value_error = tasks.failing_value_error.enqueue()
    own_error = tasks.failing_own_error.enqueue()
    system_exit = tasks.failing_system_exit.enqueue()
    not_json = tasks.complex_return_value.enqueue()
    expected = [
        (value_error, ValueError, "ValueError: This task failed due to ValueError\n"),
        (own_error, tasks.TaskAppError, "tests.taskapp.tasks.TaskAppError: an error of the app's own\n"),
        (system_exit, SystemExit, "SystemExit: This task failed due to SystemExit\n"),
    ]
    for result, exception, last_line in expected:
        done = finished(result)
        assert done.status == TaskResultStatus.FAILED
        with pytest.raises(ValueError, match="Task failed"):
            _ = done.return_value
        assert len(done.errors) == done.attempts == 1
        assert done.errors[0].exception_class is exception
        assert done.errors[0].traceback.startswith("Traceback (most recent call last):")
        assert done.errors[0].traceback.endswith(last_line), done.errors[0].traceback
        assert done.finished_at is not None and done.started_at is not None
    done = finished(not_json)
    assert done.status == TaskResultStatus.FAILED
    assert done.errors[0].exception_class is TypeError
    assert "Unsupported type" in done.errors[0].traceback
    ended = {(task_id, status) for name, task_id, status, *_ in signals(broker) if name == "finished"}
    assert {(r.id, "FAILED") for r in (value_error, own_error, system_exit, not_json)} <= ended


def test_a_task_over_its_timeout_fails_with_a_timeout(broker: Any, workers: Proc) -> None:
    """``short`` gives each attempt 0.5 s: the async task is cancelled on the event loop; the sync one
    ignores it, so the worker replaces its process (after JQS_WORKER_KILL_GRACE)."""
    sync, asynchronous = tasks.hang.enqueue(), tasks.hang_async.enqueue()
    for result in (sync, asynchronous):
        done = finished(result, timeout=30)
        assert done.status == TaskResultStatus.FAILED
        assert [e.exception_class for e in done.errors] == [TimeoutError]
        assert "longer than its 0.5s limit" in done.errors[0].traceback
        assert (done.finished_at - done.started_at).total_seconds() < 10
    mine: dict[str, list[tuple[str, str]]] = {task_id: [] for task_id in (sync.id, asynchronous.id)}
    for name, task_id, status, *_ in signals(broker):
        mine.setdefault(task_id, []).append((name, status))
    assert mine[sync.id] == [("started", "RUNNING")], "no task_finished from a process the worker replaced"
    assert mine[asynchronous.id] == [("started", "RUNNING"), ("finished", "FAILED")]


def test_a_failed_attempt_is_retried_and_the_context_counts_the_attempts(broker: Any, workers: Proc) -> None:
    result, async_result = tasks.flaky.enqueue(3), tasks.flaky_async.enqueue(2)
    done = finished(result)
    assert done.status == TaskResultStatus.SUCCESSFUL, done.errors
    assert done.attempts == 3 and len(done.worker_ids) == 3
    assert done.return_value == {"attempt": 3, "worker_ids": done.worker_ids}
    assert [e.exception_class for e in done.errors] == [RuntimeError, RuntimeError]
    assert done.errors[0].traceback.endswith("RuntimeError: attempt 1 fails on purpose\n")
    assert done.errors[1].traceback.endswith("RuntimeError: attempt 2 fails on purpose\n")
    assert done.started_at < done.last_attempted_at < done.finished_at
    done_async = finished(async_result)
    assert (done_async.status, done_async.return_value, done_async.attempts) == (TaskResultStatus.SUCCESSFUL, 2, 2)
    assert [e.exception_class for e in done_async.errors] == [RuntimeError]
    mine = [(name, status, attempts) for name, task_id, status, attempts, _ in signals(broker) if task_id == result.id]
    assert mine == [
        ("started", "RUNNING", "1"),
        ("finished", "FAILED", "1"),
        ("started", "RUNNING", "2"),
        ("finished", "FAILED", "2"),
        ("started", "RUNNING", "3"),
        ("finished", "SUCCESSFUL", "3"),
    ]


def test_between_two_attempts_the_result_is_ready_with_the_failed_attempt_s_error(broker: Any, workers: Proc) -> None:
    """``patient`` retries after a minute: the test looks at the result in between, then cancels it."""
    from jobs import client

    result = tasks.flaky.using(backend="patient").enqueue(2)
    wait_for(lambda: Job.objects.filter(pk=result.id, status="retrying").exists(), message="the retry")
    result.refresh()
    assert result.status == TaskResultStatus.READY and not result.is_finished
    assert result.attempts == 1 and result.worker_ids == [JobAttempt.objects.get(job_id=result.id).worker]
    assert [e.exception_class for e in result.errors] == [RuntimeError]
    client.cancel(result.id)
    result.refresh()
    assert result.status == TaskResultStatus.FAILED


def test_a_task_with_run_after_runs_once_it_is_due(broker: Any, workers: Proc) -> None:
    run_after = timezone.now() + timedelta(seconds=1.5)
    result = tasks.noop.using(run_after=run_after).enqueue()
    assert default_task_backend.get_result(result.id).status == TaskResultStatus.READY
    done = finished(result)
    assert done.status == TaskResultStatus.SUCCESSFUL
    assert done.started_at >= run_after
    assert done.task.run_after == run_after


def test_tasks_run_in_the_order_of_their_priority(broker: Any, tmp_path: Path) -> None:
    key = f"{broker.prefix}:order"
    for priority, tag in [(-50, "low"), (0, "middle"), (100, "top"), (10, "high")]:
        tasks.record.using(priority=priority).enqueue(key, tag)
    with running(["runworkers", "--processes", "1", "--concurrency", "1"], tmp_path, "workers") as proc:
        wait_for(lambda: broker.client.llen(key) == 4, timeout=20, message=f"four tasks to run:\n{proc.log()[-2000:]}")
    assert [tag.decode() for tag in broker.client.lrange(key, 0, -1)] == ["top", "high", "middle", "low"]


def test_a_task_enqueued_in_a_transaction_that_rolls_back_never_runs(broker: Any, workers: Proc) -> None:
    key = f"{broker.prefix}:ran"
    with pytest.raises(RuntimeError), transaction.atomic():
        tasks.record.enqueue(key, "rolled back")
        raise RuntimeError("roll back")
    committed = tasks.record.enqueue(key, "committed")  # behind the other in the queue, had it been pushed
    finished(committed)
    assert [tag.decode() for tag in broker.client.lrange(key, 0, -1)] == ["committed"]
    assert Job.objects.count() == 1
