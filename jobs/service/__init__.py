"""The one entry for every caller: the REST API, the admin, the dashboard, the Python API
(:mod:`jobs.client`) and management commands submit, read, cancel, retry, run now, delete, pause and
count through here, never through the broker or the state machine directly
(``tests/test_service_boundary.py`` holds that).

It takes typed arguments, returns rows and plain values, and raises domain errors
(:mod:`jobs.service.errors`); how each becomes an HTTP status or a message is the caller's business.

* :mod:`~jobs.service.submission`: one job (with idempotency) or many, all or none.
* :mod:`~jobs.service.actions`: one job: get, list, cancel, retry, run now, delete.
* :mod:`~jobs.service.bulk`: an action on many jobs, each refused or changed.
* :mod:`~jobs.service.workflows`: a workflow's jobs and dependencies, all or none; a workflow read back.
* :mod:`~jobs.service.batches`: a batch with callbacks: create, close, cancel, read.
* :mod:`~jobs.service.queues`: pause, resume, limits, and the statistics of queues, the system and workers.
* :mod:`~jobs.service.watch`: waiting for a job to end, woken over Redis Pub/Sub (no polling).
"""

from jobs.service import errors
from jobs.service.actions import (
    JOB_ACTIONS,
    cancel,
    delete_finished,
    delete_jobs,
    find_job,
    get_job,
    job_id_of,
    list_jobs,
    retry,
    run_now,
)
from jobs.service.batches import BatchView, cancel_batch, close_batch, create_batch, get_batch
from jobs.service.bulk import BulkOutcome, apply_each
from jobs.service.errors import *  # noqa: F403 - every error a caller catches, as listed in errors.__all__
from jobs.service.queues import (
    STATUSES,
    check_queue_limits,
    check_queue_name,
    counts_by_queue,
    known_queue_names,
    live_workers,
    pause_queue,
    queue_limits,
    queue_stats,
    redis_master,
    resume_queue,
    set_paused,
    system_stats,
    throughput_series,
    update_queue_limits,
    worker_stats,
    workers_summary,
)
from jobs.service.submission import submit, submit_many
from jobs.service.watch import end_watch, has_ended, wait_for_end
from jobs.service.workflows import (
    Relations,
    WorkflowView,
    create_workflow,
    depths,
    get_workflow,
    job_relations,
    parent_ids,
)

__all__ = [
    *errors.__all__,
    "JOB_ACTIONS",
    "STATUSES",
    "BatchView",
    "BulkOutcome",
    "Relations",
    "WorkflowView",
    "apply_each",
    "cancel",
    "check_queue_limits",
    "cancel_batch",
    "close_batch",
    "check_queue_name",
    "counts_by_queue",
    "create_batch",
    "create_workflow",
    "delete_finished",
    "delete_jobs",
    "end_watch",
    "depths",
    "find_job",
    "get_batch",
    "get_job",
    "has_ended",
    "get_workflow",
    "job_id_of",
    "job_relations",
    "parent_ids",
    "known_queue_names",
    "list_jobs",
    "live_workers",
    "pause_queue",
    "queue_limits",
    "queue_stats",
    "redis_master",
    "resume_queue",
    "retry",
    "run_now",
    "set_paused",
    "submit",
    "submit_many",
    "system_stats",
    "throughput_series",
    "update_queue_limits",
    "wait_for_end",
    "worker_stats",
    "workers_summary",
]
