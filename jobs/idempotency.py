"""Idempotency keys, as Stripe has them: scoped to whoever submits, and bound to the request they came with.

A key is unique within its scope (``"user:<id>"`` over REST; ``""`` from Python and the scheduler), so
one user's key never returns another user's job. The submission that first used a key is remembered as
a SHA-256 fingerprint: the same submission again returns the first job, a different one is refused
(:class:`IdempotencyConflict`, a 409 over REST) instead of silently answering with a job it did not ask for.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import TYPE_CHECKING, Any

from jobs.validation import InvalidJob, JobSpec

if TYPE_CHECKING:
    from jobs.models import Job

PYTHON_SCOPE = ""


class IdempotencyConflict(InvalidJob):
    """The key was used before, in this scope, for a different submission; ``job`` is that first job."""

    def __init__(self, key: str, job: Job) -> None:
        self.key = key
        self.job = job
        super().__init__(
            "idempotency_key",
            f"{key!r} was used for job {job.pk} with a different request; use a new key for a new job",
        )


def user_scope(user: Any) -> str:
    """The scope of a request's user: its own, or the shared one of an unauthenticated (open-mode) caller."""
    return f"user:{user.pk}" if getattr(user, "is_authenticated", False) else PYTHON_SCOPE


def fingerprint(spec: JobSpec) -> str:
    """SHA-256 of the submission as given (every field but the key), in a canonical JSON form."""
    fields = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec) if f.name != "idempotency_key"}
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def check_reuse(spec: JobSpec, job: Job) -> Job:
    """``job`` (found by ``spec``'s key) if ``spec`` is the submission that made it; else a conflict."""
    if job.request_fingerprint and job.request_fingerprint != fingerprint(spec):
        raise IdempotencyConflict(str(spec.idempotency_key), job)
    return job
