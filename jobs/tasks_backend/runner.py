"""The processors that run enqueued tasks on ZipLine's workers: ``django_task`` on the job threads,
``django_task_async`` (an ``async def`` task) on the worker's event loop.

Each attempt sends ``task_started`` before the function runs and ``task_finished`` when it returns
or raises, with the task's ``TaskResult`` (the attempt counts in ``worker_ids``, so a
``takes_context`` task's ``context.attempt`` is ZipLine's attempt number). What the function raises
is raised on, so ZipLine's retry policy and timeouts apply as to any job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.utils import timezone

from jobs.registry import Context, PayloadError, PermanentError, RetryDefaults
from jobs.tasks_backend.job_types import ASYNC_TYPE, SYNC_TYPE

if TYPE_CHECKING:
    from types import ModuleType

    from jobs.models import Job, JobAttempt
    from jobs.tasks_backend.compat import Task, TaskResult


def _framework() -> ModuleType:
    """The Tasks framework's names, imported at the first task a worker runs, not at its start: the
    ``django-tasks`` backport imports django-stubs-ext, which imports the admin (tests/test_workers_lean.py)."""
    from jobs.tasks_backend import compat

    return compat


def check_payload(payload: dict[str, Any]) -> None:
    """A task's payload: the task's dotted path, its JSON arguments, the backend's alias."""
    from jobs.tasks_backend.results import in_an_installed_app

    if not isinstance(payload.get("task"), str):
        raise PayloadError("task", "must be the task's dotted path")
    if not in_an_installed_app(payload["task"]):
        raise PayloadError("task", "must name a task in an installed app (INSTALLED_APPS, JQS_APPS)")
    if not isinstance(payload.get("args", []), list):
        raise PayloadError("args", "must be a list")
    if not isinstance(payload.get("kwargs", {}), dict):
        raise PayloadError("kwargs", "must be an object")


def _earlier_attempts(job: Job) -> list[JobAttempt]:
    from jobs.models import JobAttempt

    return list(JobAttempt.objects.filter(job=job).order_by("number"))


def begin(job: Job, attempts: list[JobAttempt]) -> tuple[Task, TaskResult]:
    """Load the task, build its running result, and send ``task_started``."""
    from jobs.tasks_backend.results import NotATask, build, load_task

    check_payload(job.payload)
    try:
        task = load_task(job.payload)
    except NotATask as exc:
        raise PermanentError(str(exc)) from None
    result = build(task, job, attempts, str(job.payload.get("backend", task.backend)))
    _framework().task_started.send(type(task.get_backend()), task_result=result)
    return task, result


def call_args(task: Task, result: TaskResult) -> tuple[list[Any], dict[str, Any]]:
    args = list(result.args)
    if task.takes_context:
        args.insert(0, _framework().TaskContext(task_result=result))
    return args, dict(result.kwargs)


def succeeded(task: Task, result: TaskResult, value: Any) -> Any:
    """Record the return value (already JSON, as the framework requires) and send ``task_finished``."""
    _framework().set_field(result, "_return_value", value)
    _finish(task, result, _framework().TaskResultStatus.SUCCESSFUL)
    return value


def failed(task: Task, result: TaskResult, error: BaseException) -> None:
    """Add the error to the result and send ``task_finished`` (called inside the ``except``)."""
    from traceback import format_exception

    path = f"{type(error).__module__}.{type(error).__qualname__}"
    result.errors.append(_framework().TaskError(exception_class_path=path, traceback="".join(format_exception(error))))
    _finish(task, result, _framework().TaskResultStatus.FAILED)


def _finish(task: Task, result: TaskResult, status: Any) -> None:
    _framework().set_field(result, "status", status)
    _framework().set_field(result, "finished_at", timezone.now())
    _framework().task_finished.send(type(task.get_backend()), task_result=result)


class DjangoTaskProcessor:
    """Runs a synchronous task function on a job thread."""

    name = SYNC_TYPE
    retry = RetryDefaults()

    def can_process(self, job_type: str) -> bool:
        return job_type == self.name

    def validate_payload(self, payload: dict[str, Any]) -> None:
        check_payload(payload)

    def process(self, job: Job, ctx: Context) -> Any:
        task, result = begin(job, _earlier_attempts(job) if ctx.attempt > 1 else [])
        args, kwargs = call_args(task, result)
        try:
            value = _framework().normalize_json(task.call(*args, **kwargs))
        except BaseException as exc:
            failed(task, result, exc)
            raise
        return succeeded(task, result, value)


class AsyncDjangoTaskProcessor(DjangoTaskProcessor):
    """Runs an ``async def`` task function on the worker's event loop."""

    name = ASYNC_TYPE

    async def process(self, job: Job, ctx: Context) -> Any:
        earlier = await sync_to_async(_earlier_attempts, thread_sensitive=False)(job) if ctx.attempt > 1 else []
        task, result = begin(job, earlier)
        args, kwargs = call_args(task, result)
        try:
            value = _framework().normalize_json(await task.acall(*args, **kwargs))
        except BaseException as exc:
            failed(task, result, exc)
            raise
        return succeeded(task, result, value)
