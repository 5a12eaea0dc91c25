"""A job's rows as the framework's ``TaskResult``: status, return value, errors, attempts and times.

Used by ``get_result`` (any process) and by the worker, which hands the running task its result
(``takes_context``) and sends it with ``task_started`` / ``task_finished``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.utils.module_loading import import_string

from jobs.lifecycle import Status
from jobs.models import Outcome
from jobs.tasks_backend.compat import Task, TaskError, TaskResult, TaskResultStatus, set_field

if TYPE_CHECKING:
    from jobs.models import Job, JobAttempt

STATUS = {
    Status.PENDING: TaskResultStatus.READY,
    Status.SCHEDULED: TaskResultStatus.READY,
    Status.RETRYING: TaskResultStatus.READY,
    Status.RUNNING: TaskResultStatus.RUNNING,
    Status.COMPLETED: TaskResultStatus.SUCCESSFUL,
    Status.FAILED: TaskResultStatus.FAILED,
    Status.CANCELLED: TaskResultStatus.FAILED,
    Status.EXPIRED: TaskResultStatus.FAILED,  # never ran: its expires_at passed first
    Status.BLOCKED: TaskResultStatus.READY,  # waits for its parents
}
# The exception an attempt without a traceback stands for (the worker ended it, not the task).
_NO_TRACEBACK = {
    Outcome.TIMEOUT: "builtins.TimeoutError",
    Outcome.CANCELLED: "jobs.registry.JobCancelled",
}
_FAILED_OUTCOMES = {Outcome.FAILED, Outcome.TIMEOUT, Outcome.LOST, Outcome.CANCELLED}


class NotATask(LookupError):
    """A job's payload names something that is not (or no longer) an importable task."""


def in_an_installed_app(path: str) -> bool:
    """Whether ``path`` lies in the package of an installed app: nothing else is imported for a job, so a
    submitter cannot make a worker import an arbitrary module (whose import alone may act)."""
    from django.apps import apps

    module = path.rpartition(".")[0]
    return any(module == app.name or module.startswith(f"{app.name}.") for app in apps.get_app_configs())


def load_task(payload: dict[str, Any]) -> Task:
    """The ``Task`` a job's payload names, with the options it was enqueued with."""
    path = payload.get("task")
    if not in_an_installed_app(str(path)):
        raise NotATask(f"task {path!r} is not in an installed app (INSTALLED_APPS, JQS_APPS)")
    try:
        found = import_string(str(path))
    except ImportError as exc:
        raise NotATask(f"task {path!r} cannot be imported: {exc}") from None
    if not isinstance(found, Task):
        raise NotATask(f"{path!r} is not a task (decorate it with @task)")
    run_after = payload.get("run_after")
    backend = payload.get("backend")
    return found.using(
        run_after=datetime.fromisoformat(run_after) if run_after else None,
        backend=backend if isinstance(backend, str) else None,
    )


def exception_class_path(traceback: str) -> str | None:
    """The dotted path of the exception a formatted traceback ends with (``builtins.`` for built-ins)."""
    lines = traceback.splitlines()
    frames = [i for i, line in enumerate(lines) if line.startswith('  File "')]
    if not frames:
        return None
    rest = lines[frames[-1] + 1 :]
    header = next((line for line in rest if line and not line.startswith(" ")), "")
    name = header.split(":", 1)[0].strip()
    if not name or " " in name:
        return None
    return name if "." in name else f"builtins.{name}"


def task_error(attempt: JobAttempt) -> TaskError:
    """What one failed attempt left behind, as the framework's ``TaskError``."""
    path = exception_class_path(attempt.traceback) if attempt.traceback else None
    path = path or _NO_TRACEBACK.get(Outcome(attempt.outcome), "builtins.RuntimeError")
    return TaskError(exception_class_path=path, traceback=attempt.traceback or attempt.error)


def build(task: Task, job: Job, attempts: Sequence[JobAttempt], backend: str) -> TaskResult:
    """The ``TaskResult`` of ``job``, given its recorded attempts (oldest first)."""
    worker_ids = [a.worker for a in attempts]
    if job.status == Status.RUNNING:
        worker_ids.append(job.worker)
    # An attempt's start as its row records it; the claim's time for the attempt still running.
    first_start = attempts[0].started_at if attempts else job.started_at
    last_start = job.started_at if job.status == Status.RUNNING or not attempts else attempts[-1].started_at
    status = STATUS[Status(job.status)]
    result = TaskResult(
        task=task,
        id=str(job.pk),
        status=status,
        enqueued_at=job.created_at,
        started_at=first_start,
        finished_at=job.completed_at if status in (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED) else None,
        last_attempted_at=last_start,
        args=job.payload.get("args", []),
        kwargs=job.payload.get("kwargs", {}),
        backend=backend,
        errors=[task_error(a) for a in attempts if a.outcome in _FAILED_OUTCOMES],
        worker_ids=worker_ids,
    )
    if status == TaskResultStatus.SUCCESSFUL:
        set_field(result, "_return_value", job.result)
    return result
