"""ZipLine's backend for Django's Tasks framework, in the caller's process: enqueue, validation,
results, signals, transactions. The runs on real workers are in tests/test_django_tasks_workers.py.

Ported from the behaviours Django's own tests check for a backend (Django 6.0's ``tests/tasks/``:
``test_tasks.py``, ``test_immediate_backend.py``); these run on Django 5.2 with the django-tasks backport
and, under ``make test`` where Python 3.12 is found, on Django 6.0's ``django.tasks``.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from jobs.models import Job
from jobs.tasks_backend.backend import ASYNC_TYPE, SYNC_TYPE, ZipLineBackend
from jobs.tasks_backend.compat import (
    InvalidTask,
    Task,
    TaskResultDoesNotExist,
    TaskResultMismatch,
    TaskResultStatus,
    default_task_backend,
    task,
    task_backends,
    task_enqueued,
)
from jobs.tasks_backend.results import exception_class_path
from tests.taskapp import tasks

ZIPLINE = "jobs.tasks_backend.backend.ZipLineBackend"


def ready_ids(broker: Any, queue: str = "default") -> set[str]:
    """The job ids Redis holds ready or delayed in ``queue``."""
    from jobs.broker.keys import queue_keys

    keys = queue_keys(broker.prefix, queue)
    ready = broker.client.zrange(keys.ready, 0, -1)
    delayed = broker.client.zrange(keys.delayed, 0, -1)
    return {value.decode() for value in [*ready, *delayed]}


def test_the_project_s_default_backend_is_zipline_s() -> None:
    from zipline_site import settings as project

    assert project.TASKS["default"]["BACKEND"] == ZIPLINE
    assert isinstance(task_backends["default"], ZipLineBackend)
    assert default_task_backend == task_backends["default"]
    assert default_task_backend.alias == "default"


def test_the_backend_declares_every_capability() -> None:
    backend = task_backends["default"]
    assert backend.supports_defer is True
    assert backend.supports_async_task is True
    assert backend.supports_get_result is True
    assert backend.supports_priority is True


def test_decorated_functions_are_tasks_with_their_options() -> None:
    assert isinstance(tasks.noop, Task)
    assert isinstance(tasks.noop_async, Task)
    assert tasks.noop.name == "noop"
    assert tasks.noop.module_path == "tests.taskapp.tasks.noop"
    assert tasks.flaky.backend == "quick"
    assert tasks.get_task_id.takes_context is True
    now = timezone.now()
    chained = tasks.noop.using(run_after=now).using(priority=10, queue_name="emails")
    assert (chained.run_after, chained.priority, chained.queue_name) == (now, 10, "emails")
    assert tasks.noop.priority == 0 and tasks.noop.run_after is None


@pytest.mark.django_db
def test_enqueue_writes_one_job_with_the_task_s_queue_priority_and_arguments(broker: object) -> None:
    result = tasks.echo.using(priority=7, queue_name="reports").enqueue(1, (2, 3), when="later", n={"a": None})
    assert result.status == TaskResultStatus.READY
    assert result.is_finished is False
    assert result.task == tasks.echo.using(priority=7, queue_name="reports")
    assert (result.args, result.kwargs) == ([1, [2, 3]], {"when": "later", "n": {"a": None}})
    assert result.backend == "default"
    assert (result.worker_ids, result.errors, result.attempts) == ([], [], 0)
    assert result.started_at is None and result.finished_at is None and result.last_attempted_at is None
    job = Job.objects.get(pk=result.id)
    assert (job.type, job.queue, job.priority, job.status) == (SYNC_TYPE, "reports", 7, "pending")
    assert job.payload == {
        "task": "tests.taskapp.tasks.echo",
        "args": [1, [2, 3]],
        "kwargs": {"when": "later", "n": {"a": None}},
        "backend": "default",
    }
    assert result.enqueued_at == job.created_at
    with pytest.raises(ValueError, match="Task has not finished yet"):
        _ = result.return_value


@pytest.mark.django_db
def test_an_async_task_is_a_job_of_the_async_type(broker: object) -> None:
    result = tasks.noop_async.enqueue()
    assert Job.objects.get(pk=result.id).type == ASYNC_TYPE


@pytest.mark.django_db
def test_run_after_schedules_the_job(broker: object) -> None:
    later = timezone.now() + timedelta(hours=1)
    result = tasks.noop.using(run_after=later).enqueue()
    job = Job.objects.get(pk=result.id)
    assert (job.status, job.schedule_at) == ("scheduled", later)
    assert tasks.noop.get_result(result.id).task.run_after == later


@pytest.mark.django_db
def test_a_run_after_in_the_past_runs_at_once(broker: object) -> None:
    result = tasks.noop.using(run_after=timezone.now() - timedelta(minutes=5)).enqueue()
    assert Job.objects.get(pk=result.id).status == "pending"


@pytest.mark.django_db
def test_backend_options_give_every_job_its_retry_policy_and_timeout(broker: object) -> None:
    job = Job.objects.get(pk=tasks.failing_value_error.enqueue().id)
    assert (job.max_retries, job.timeout) == (0, 0.5)
    job = Job.objects.get(pk=tasks.flaky.enqueue(2).id)
    assert (job.backoff, job.initial_delay) == ("fixed", 0.05)


@pytest.mark.django_db
def test_arguments_that_are_not_json_are_the_framework_s_type_error(broker: object) -> None:
    with pytest.raises(TypeError, match="Unsupported type"):
        tasks.noop.enqueue(datetime.now())
    with pytest.raises(TypeError, match="Unsupported type"):
        async_to_sync(tasks.noop.aenqueue)(object())
    assert not Job.objects.exists()


def test_validation_errors_are_the_framework_s_invalid_task() -> None:
    from jobs.tasks_backend.compat import TaskContext

    def local() -> None:
        pass

    with pytest.raises(InvalidTask, match="Task function must be defined at a module level."):
        task()(local)
    with pytest.raises(InvalidTask, match="run_after must be an aware datetime."):
        tasks.noop.using(run_after=datetime.now())
    for priority in (-101, 101, 3.1):
        with pytest.raises(InvalidTask, match="priority must be a whole number between -100 and 100."):
            tasks.noop.using(priority=priority)
    for priority in (-100, 0, 100):
        assert tasks.noop.using(priority=priority).priority == priority
    with pytest.raises(InvalidTask, match="Task takes context but does not have a first argument of 'context'."):
        task(takes_context=True)(tasks.calculate_meaning_of_life.func)
    assert TaskContext  # the context class is the framework's (used by tests.taskapp.tasks)


@pytest.mark.django_db
def test_a_queue_name_zipline_refuses_is_invalid_task_naming_the_field(broker: object) -> None:
    with pytest.raises(InvalidTask, match=r"queue: 'no spaces' is not a queue name"):
        tasks.noop.using(queue_name="no spaces").enqueue()
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_queues_restrict_the_queue_names_as_the_framework_says(broker: object) -> None:
    only = {"default": {"BACKEND": ZIPLINE, "QUEUES": ["queue-1"]}}
    with override_settings(TASKS=only):
        with pytest.raises(InvalidTask, match="Queue 'unknown_queue' is not valid for backend."):
            tasks.noop.using(queue_name="unknown_queue")
        for _ in range(2):  # a task found invalid is checked again each time (only valid ones are remembered)
            with pytest.raises(InvalidTask, match="Queue 'default' is not valid for backend."):
                default_task_backend.enqueue(tasks.noop, [], {})
        with pytest.raises(InvalidTask, match="Queue 'default' is not valid for backend."):
            async_to_sync(tasks.noop.aenqueue)()
        result = tasks.noop.using(queue_name="queue-1").enqueue()
    assert Job.objects.get(pk=result.id).queue == "queue-1"


@pytest.mark.django_db
def test_a_task_valid_for_one_backend_is_checked_again_by_a_backend_built_for_new_settings(broker: object) -> None:
    tasks.noop.enqueue()
    with override_settings(TASKS={"default": {"BACKEND": ZIPLINE, "QUEUES": ["other"]}}):
        with pytest.raises(InvalidTask, match="Queue 'default' is not valid for backend."):
            tasks.noop.enqueue()
    assert Job.objects.count() == 1


@pytest.mark.django_db
def test_bad_backend_options_are_invalid_task_naming_the_field(broker: object) -> None:
    bad = {"default": {"BACKEND": ZIPLINE, "QUEUES": [], "OPTIONS": {"retry": {"max_retries": -1}}}}
    with override_settings(TASKS=bad):
        with pytest.raises(InvalidTask, match="retry.max_retries"):
            tasks.noop.enqueue()
    bad = {"default": {"BACKEND": ZIPLINE, "QUEUES": [], "OPTIONS": {"timeout": "soon"}}}
    with override_settings(TASKS=bad):
        with pytest.raises(InvalidTask, match="timeout"):
            tasks.noop.enqueue()
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_get_result_returns_what_enqueue_returned(broker: object) -> None:
    result = default_task_backend.enqueue(tasks.noop, (), {})
    assert tasks.noop.get_result(result.id) == result
    assert async_to_sync(tasks.noop.aget_result)(result.id) == result
    before = dataclasses.asdict(result)
    result.refresh()
    assert dataclasses.asdict(result) == before
    async_to_sync(result.arefresh)()
    assert dataclasses.asdict(result) == before


@pytest.mark.django_db
def test_aenqueue_enqueues(broker: object) -> None:
    result = async_to_sync(tasks.calculate_meaning_of_life.aenqueue)()
    assert result.status == TaskResultStatus.READY
    assert Job.objects.get(pk=result.id).payload["task"] == "tests.taskapp.tasks.calculate_meaning_of_life"
    result = async_to_sync(default_task_backend.aenqueue)(tasks.noop_async, [], {"k": 1})
    assert result.kwargs == {"k": 1}


@pytest.mark.django_db
def test_a_result_of_another_task_is_a_mismatch(broker: object) -> None:
    result = default_task_backend.enqueue(tasks.noop_async, (), {})
    with pytest.raises(TaskResultMismatch, match="Task does not match"):
        tasks.noop.get_result(result.id)
    with pytest.raises(TaskResultMismatch, match="Task does not match"):
        async_to_sync(tasks.noop.aget_result)(result.id)


@pytest.mark.django_db
def test_an_unknown_id_or_a_job_that_is_not_a_task_does_not_exist(broker: object) -> None:
    from jobs import client

    other = client.enqueue("test_noop")
    for result_id in ("123", str(other.pk), "00000000-0000-0000-0000-000000000000", ""):
        with pytest.raises(TaskResultDoesNotExist):
            default_task_backend.get_result(result_id)
        with pytest.raises(TaskResultDoesNotExist):
            async_to_sync(default_task_backend.aget_result)(result_id)


@pytest.mark.django_db
def test_a_task_that_can_no_longer_be_imported_has_no_result(broker: object) -> None:
    result = tasks.noop.enqueue()
    Job.objects.filter(pk=result.id).update(payload={"task": "tests.taskapp.tasks.gone", "args": [], "kwargs": {}})
    with pytest.raises(TaskResultDoesNotExist, match="cannot be imported"):
        default_task_backend.get_result(result.id)


@pytest.mark.django_db(transaction=True)
def test_enqueue_in_a_transaction_reaches_redis_and_sends_task_enqueued_only_on_commit(broker: object) -> None:
    sent: list[Any] = []

    def receiver(sender: Any, task_result: Any, **kwargs: Any) -> None:
        sent.append((sender, task_result))

    task_enqueued.connect(receiver)
    try:
        with transaction.atomic():
            result = tasks.noop.enqueue()
            assert sent == [] and result.id not in ready_ids(broker)
        assert sent == [(ZipLineBackend, result)]
        assert result.id in ready_ids(broker)
    finally:
        task_enqueued.disconnect(receiver)


@pytest.mark.django_db(transaction=True)
def test_a_task_enqueued_in_a_transaction_that_rolls_back_leaves_nothing(broker: object) -> None:
    sent: list[Any] = []
    task_enqueued.connect(lambda sender, task_result, **kw: sent.append(task_result), weak=False, dispatch_uid="rb")
    try:
        with pytest.raises(RuntimeError), transaction.atomic():
            result = tasks.noop.enqueue()
            raise RuntimeError("roll back")
        assert not Job.objects.filter(pk=result.id).exists()
        assert ready_ids(broker) == set()
        assert sent == []
        with pytest.raises(TaskResultDoesNotExist):
            tasks.noop.get_result(result.id)
    finally:
        task_enqueued.disconnect(dispatch_uid="rb")


def test_the_exception_class_is_read_from_the_traceback() -> None:
    import traceback

    from tests.taskapp.tasks import TaskAppError

    def formatted(exc: BaseException) -> str:
        try:
            raise exc
        except BaseException as caught:  # noqa: BLE001
            return "".join(traceback.format_exception(caught))

    assert exception_class_path(formatted(ValueError("a\nmultiline: message"))) == "builtins.ValueError"
    assert exception_class_path(formatted(TaskAppError("x"))) == "tests.taskapp.tasks.TaskAppError"
    assert exception_class_path(formatted(SystemExit())) == "builtins.SystemExit"
    try:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise TaskAppError("outer") from inner
    except TaskAppError as outer:
        assert exception_class_path("".join(traceback.format_exception(outer))) == "tests.taskapp.tasks.TaskAppError"
    assert exception_class_path("timeout: the attempt ran longer than its 1s limit") is None


def test_the_framework_is_django_s_own_from_django_6_and_the_backport_before() -> None:
    import django

    from jobs.tasks_backend.compat import FRAMEWORK

    assert FRAMEWORK == ("django.tasks" if django.VERSION >= (6, 0) else "django_tasks")


def _pins(name: str) -> dict[str, str]:
    from tests.procs import ROOT

    lines = (ROOT / name).read_text().splitlines()
    pairs = [line.split("==", 1) for line in lines if "==" in line and not line.startswith("#")]
    return {package.split("[")[0].lower(): version for package, version in pairs}


def test_the_django_6_requirements_differ_from_the_project_s_only_where_django_6_needs_it() -> None:
    project = {**_pins("requirements.txt"), **_pins("requirements-dev.txt")}
    django6 = _pins("requirements-django6.txt")
    assert "django-tasks" not in django6
    assert django6["django"].startswith("6.0.")
    assert (project["django-prometheus"], django6["django-prometheus"]) == ("2.4.1", "2.5.0")
    same = set(django6) - {"django", "django-prometheus"}
    assert {name: django6[name] for name in same} == {name: project[name] for name in same}
    assert set(_pins("requirements.txt")) - {"django-tasks"} <= set(django6)


@pytest.mark.django_db
def test_a_cancelled_task_is_failed_with_its_finish_time(broker: object) -> None:
    from jobs import client

    result = tasks.noop.enqueue()
    client.cancel(result.id)
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.finished_at == Job.objects.get(pk=result.id).completed_at is not None
    assert (result.errors, result.worker_ids) == ([], [])


@pytest.mark.django_db
def test_enqueue_logs_the_task_on_the_framework_s_logger_when_it_commits(
    broker: object, caplog: pytest.LogCaptureFixture, django_capture_on_commit_callbacks: Any
) -> None:
    from jobs.tasks_backend.compat import FRAMEWORK

    with caplog.at_level("DEBUG", logger=FRAMEWORK), django_capture_on_commit_callbacks(execute=True):
        result = tasks.noop.enqueue()
        assert not [r for r in caplog.records if r.name == FRAMEWORK]
    [line] = [r.getMessage() for r in caplog.records if r.name == FRAMEWORK]
    assert f"Task id={result.id} path=tests.taskapp.tasks.noop enqueued backend=default" == line


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["antigravity.fly", "os.system", "tests.settings.SECRET_KEY"])
def test_a_submitted_task_outside_the_installed_apps_is_refused_naming_the_field(broker: object, path: str) -> None:
    """A job of the task types may be submitted like any job (REST, Python): it must not make a worker
    import a module of the submitter's choosing, so only the packages of installed apps may be named."""
    from jobs import client
    from jobs.validation import InvalidJob

    for job_type in (SYNC_TYPE, ASYNC_TYPE):
        with pytest.raises(InvalidJob) as refused:
            client.enqueue(job_type, {"task": path, "args": [], "kwargs": {}})
        assert refused.value.field == "payload.task", refused.value
        assert "installed app" in str(refused.value)
    assert not Job.objects.filter(type__in=[SYNC_TYPE, ASYNC_TYPE]).exists()


def test_a_worker_refuses_a_stored_task_outside_the_installed_apps() -> None:
    from jobs.tasks_backend.results import NotATask, load_task

    with pytest.raises(NotATask, match="not in an installed app"):
        load_task({"task": "antigravity.fly"})
    assert load_task({"task": f"{tasks.__name__}.{next(iter(_task_names()))}"})


def _task_names() -> list[str]:
    from jobs.tasks_backend.compat import Task

    return [name for name, value in vars(tasks).items() if isinstance(value, Task)]
