"""What the service raises: domain errors, with no HTTP in them. :mod:`jobs.api.errors` maps each to
a status in one place; the admin and the dashboard turn them into messages.

Besides the two defined here, callers meet :class:`InvalidJob` (a field and why), :class:`PayloadTooLarge`,
:class:`IdempotencyConflict`, :class:`TransitionError` (the job's state does not allow the action) and
:class:`BrokerUnavailable`; they are re-exported so that callers import errors from one place.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from django.db import IntegrityError

from jobs.broker import BrokerUnavailable
from jobs.idempotency import IdempotencyConflict
from jobs.models import Batch, Job, Workflow
from jobs.states import TransitionError
from jobs.validation import InvalidJob, PayloadTooLarge

__all__ = [
    "BrokerUnavailable",
    "IdempotencyConflict",
    "InvalidJob",
    "JobNotFound",
    "KeysReused",
    "PayloadTooLarge",
    "TransitionError",
    "WorkflowNotFound",
    "BatchNotFound",
]


class JobNotFound(Job.DoesNotExist):
    """No job has this id, or the text names no id at all. A ``Job.DoesNotExist``, as the Python API
    has always raised; the message names the value (quoted when it was not an id)."""

    def __init__(self, job_id: object) -> None:
        self.job_id = job_id
        super().__init__(f"no job {job_id}" if isinstance(job_id, uuid.UUID) else f"no job {job_id!r}")


class KeysReused(IntegrityError):
    """A batch reused idempotency keys (twice in it, or already stored) and nothing was written.

    An ``IntegrityError``, as the Python API has always raised; ``details`` names each job that reused
    one: ``{"jobs[3].idempotency_key": ["'k' is jobs[1]'s too"]}``.
    """

    def __init__(self, details: Mapping[str, list[str]]) -> None:
        self.details = dict(details)
        super().__init__("an idempotency key is reused; nothing was written")


class WorkflowNotFound(Workflow.DoesNotExist):
    """No workflow has this id (the API answers 404)."""

    def __init__(self, workflow_id: object) -> None:
        self.workflow_id = workflow_id
        super().__init__(f"no workflow {workflow_id!r}")


class BatchNotFound(Batch.DoesNotExist):
    """No batch has this id (the API answers 404)."""

    def __init__(self, batch_id: object) -> None:
        self.batch_id = batch_id
        super().__init__(f"no batch {batch_id!r}")
