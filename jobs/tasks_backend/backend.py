"""``ZipLineBackend``: the Tasks framework's backend that enqueues each task as a ZipLine job.

``TASKS = {"default": {"BACKEND": "jobs.tasks_backend.backend.ZipLineBackend"}}``. The row is written
in the caller's transaction and its id reaches Redis when that commits (as ``jobs.enqueue`` does),
so a task enqueued in a transaction that rolls back never runs. ``OPTIONS`` may hold ``retry`` (the
fields of a job's ``retry``) and ``timeout`` (seconds), given to every job of the backend.
"""

from __future__ import annotations

from inspect import iscoroutinefunction
from typing import TYPE_CHECKING, Any

from django.db import transaction

from jobs.tasks_backend.compat import (
    BaseTaskBackend,
    InvalidTask,
    Task,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
    set_field,
    task_enqueued,
)
from jobs.tasks_backend.job_types import ASYNC_TYPE as ASYNC_TYPE
from jobs.tasks_backend.job_types import SYNC_TYPE as SYNC_TYPE
from jobs.tasks_backend.job_types import TASK_TYPES as TASK_TYPES

if TYPE_CHECKING:
    from jobs.validation import JobSpec

MAX_REMEMBERED_TASKS = 1024


class ZipLineBackend(BaseTaskBackend):  # type: ignore[misc]  # Any: from django.tasks or the backport (compat)
    """Runs tasks on ZipLine's workers, with their retries, timeouts, priorities and leases."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self.retry: dict[str, Any] | None = self.options.get("retry")
        self.timeout: float | str | None = self.options.get("timeout")
        # Tasks this backend found valid, with their job type and module path: a task's validity depends
        # only on the task and this backend's settings (a change of TASKS builds a new backend), and
        # checking it again (signature inspection) is most of the framework's cost on every enqueue.
        self._valid: dict[Task, tuple[str, str]] = {}

    def job_type(self, task: Task) -> str:
        """Validate ``task`` (the framework's ``InvalidTask``), once per task; the type of its jobs."""
        return self._known(task)[0]

    def _known(self, task: Task) -> tuple[str, str]:
        """(job type, module path) of a task found valid (``module_path`` is built anew at each read)."""
        known = self._valid.get(task)
        if known is None:
            self.validate_task(task)
            if len(self._valid) >= MAX_REMEMBERED_TASKS:
                self._valid.clear()  # bounded: tasks made with ever new run_after values are all different
            job_type = ASYNC_TYPE if iscoroutinefunction(task.func) else SYNC_TYPE
            known = self._valid[task] = (job_type, task.module_path)
        return known

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        """Write the task's job (dispatched when the caller's transaction commits); return its result."""
        # Imported here, as in the methods below: an app may build this backend (decorating its tasks)
        # while the apps are still loading, before the models can be imported.
        from jobs.client import enqueue_idempotent
        from jobs.validation import InvalidJob

        job_type, path = self._known(task)
        # The result normalizes the arguments to JSON (the framework's TypeError for any other value).
        result = TaskResult(
            task=task,
            id="",
            status=TaskResultStatus.READY,
            enqueued_at=None,
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=args,
            kwargs=kwargs,
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        try:
            job, _ = enqueue_idempotent(self._spec(task, job_type, path, result.args, result.kwargs))
        except InvalidJob as exc:
            raise InvalidTask(str(exc)) from None
        set_field(result, "id", str(job.pk))
        set_field(result, "enqueued_at", job.created_at)
        if transaction.get_connection().in_atomic_block:
            transaction.on_commit(lambda: task_enqueued.send(type(self), task_result=result))
        else:  # committed already: what on_commit would do, without its bookkeeping
            task_enqueued.send(type(self), task_result=result)
        return result

    def _spec(self, task: Task, job_type: str, path: str, args: list[Any], kwargs: dict[str, Any]) -> JobSpec:
        from jobs.validation import JobSpec

        payload: dict[str, Any] = {"task": path, "args": args, "kwargs": kwargs, "backend": self.alias}
        if task.run_after is not None:
            payload["run_after"] = task.run_after.isoformat()
        return JobSpec(
            job_type,
            payload,
            name=path[:200],
            queue=task.queue_name,
            priority=task.priority,
            schedule_at=task.run_after,
            retry=self.retry,
            timeout=self.timeout,
        )

    def get_result(self, result_id: str) -> TaskResult:
        """The result of the task with this id; ``TaskResultDoesNotExist`` for any other id."""
        from jobs.ids import parse_job_id
        from jobs.models import Job, JobAttempt
        from jobs.tasks_backend.results import NotATask, build, load_task

        pk = parse_job_id(result_id)
        job = None if pk is None else Job.objects.filter(pk=pk, type__in=TASK_TYPES).first()
        if job is None:
            raise TaskResultDoesNotExist(result_id)
        try:
            task = load_task(job.payload)
        except NotATask as exc:
            raise TaskResultDoesNotExist(f"{result_id}: {exc}") from None
        attempts = list(JobAttempt.objects.filter(job=job).order_by("number"))
        return build(task, job, attempts, self.alias)
