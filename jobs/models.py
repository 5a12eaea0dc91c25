"""Job records: the source of truth. Redis only holds ids that can be rebuilt from these rows.

Nothing outside :mod:`jobs.states` writes ``Job.status``; the admin shows it read-only.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from jobs import lifecycle
from jobs.batch_models import Batch as Batch  # the batch row, in its own module
from jobs.lifecycle import DELAYED, Verb
from jobs.lifecycle import FINISHED as FINISHED  # re-exported: where callers have always found them
from jobs.lifecycle import LIVE as LIVE
from jobs.lifecycle import WAITING as WAITING
from jobs.lifecycle import Status as Status

PRIORITY_MIN = -100
PRIORITY_MAX = 100


class Backoff(models.TextChoices):
    EXPONENTIAL = "exponential"
    LINEAR = "linear"
    FIXED = "fixed"


class Outcome(models.TextChoices):
    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    LOST = "lost"
    CANCELLED = "cancelled"


class ParentFailure(models.TextChoices):
    CANCEL = "cancel"
    RUN = "run"


class JobQuerySet(models.QuerySet["Job"]):
    """Jobs by where they are in their lifecycle, as :mod:`jobs.lifecycle` groups the states."""

    def in_state(self, *statuses: str) -> JobQuerySet:
        return self.filter(status__in=statuses)

    def waiting(self) -> JobQuerySet:
        return self.in_state(*WAITING)

    def live(self) -> JobQuerySet:
        """Waiting or running: every job Redis should hold."""
        return self.in_state(*LIVE)

    def blocked(self) -> JobQuerySet:
        """Jobs waiting for their parents (stored ``waiting``): never in Redis (jobs.endings)."""
        return self.in_state(Status.BLOCKED)

    def unended(self) -> JobQuerySet:
        """Every job that has not ended: live or blocked."""
        return self.in_state(*LIVE, Status.BLOCKED)

    def running(self) -> JobQuerySet:
        return self.in_state(Status.RUNNING)

    def not_running(self) -> JobQuerySet:
        """Every job no worker holds."""
        return self.exclude(status=Status.RUNNING)

    def finished(self) -> JobQuerySet:
        return self.in_state(*FINISHED)

    def due(self, now: datetime) -> JobQuerySet:
        """Scheduled or retrying jobs whose due time has come (or that have none): :func:`lifecycle.is_due`."""
        return self.in_state(*DELAYED).filter(Q(schedule_at__isnull=True) | Q(schedule_at__lte=now))

    def able_to(self, verb: Verb) -> JobQuerySet:
        """The jobs ``verb`` may apply to."""
        return self.in_state(*lifecycle.sources(verb))


class Job(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, blank=True, default="")
    type = models.CharField(max_length=100)
    payload = models.JSONField(default=dict)
    queue = models.CharField(max_length=64, default="default")
    # Within a queue, groups take turns and may be limited (docs/flow-control.md); "" is the group of
    # jobs that name none. The column is not called "group", a word SQL reserves.
    group = models.CharField(max_length=200, blank=True, default="", db_default="", db_column="job_group")
    priority = models.SmallIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=lifecycle.target(Verb.SUBMIT))
    attempts = models.PositiveIntegerField(
        default=0, help_text="Attempts started so far (charged ones), since the last manual retry."
    )
    # A manual retry gives a fresh retry budget (attempts back to 0) but keeps attempt numbers unique:
    # the next attempt is numbered after every earlier one. Defaults in the database too, so that
    # processes still running the code before them can insert rows during an upgrade.
    earlier_attempts = models.PositiveIntegerField(
        default=0, db_default=0, help_text="Attempts made before the last manual retry."
    )
    manual_retries = models.PositiveIntegerField(
        default=0, db_default=0, help_text="Times the job was retried by hand."
    )
    max_retries = models.PositiveIntegerField(default=3)
    backoff = models.CharField(max_length=16, choices=Backoff.choices, default=Backoff.EXPONENTIAL)
    initial_delay = models.FloatField(default=1.0, help_text="Seconds before the first retry.")
    max_delay = models.FloatField(default=3600.0, help_text="Longest wait between retries, in seconds.")
    jitter = models.BooleanField(default=True)
    schedule_at = models.DateTimeField(null=True, blank=True, help_text="When a scheduled or retrying job is due.")
    timeout = models.FloatField(null=True, blank=True, help_text="Seconds one attempt may run.")
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")
    cancel_requested = models.BooleanField(default=False)
    # NULL, not "", when absent: the unique constraint must not see two jobs without a key as equal.
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    # Whose key it is ("user:<id>" over REST, "" from Python and the scheduler): keys are unique per scope.
    idempotency_scope = models.CharField(max_length=100, blank=True, default="")
    # SHA-256 of the submission that used the key, so a reuse with a different body is a conflict.
    request_fingerprint = models.CharField(max_length=64, blank=True, default="")
    worker = models.CharField(max_length=200, blank=True, default="")
    # Who submitted it over the API (None from Python): they see its payload's secrets unmasked
    # (jobs.masking). No index: the hot path writes every row, and only deleting a user looks it up.
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # A job not started by then never runs: it ends ``expired`` (jobs.expiry).
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Not started by then: it expires.")
    # The key a unique job was submitted under (jobs.uniqueness); NULL for a job that is not unique.
    unique_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    # What a job with parents does when one fails for good, is cancelled or deleted (jobs.endings):
    # "cancel" (it is cancelled, the reason in its error) or "run" (it runs anyway).
    on_parent_failure = models.CharField(
        max_length=8, choices=ParentFailure.choices, default=ParentFailure.CANCEL, db_default=ParentFailure.CANCEL
    )
    # The workflow the job was submitted in, and its local reference there (docs/workflows.md).
    workflow = models.ForeignKey(
        "Workflow", null=True, blank=True, on_delete=models.CASCADE, related_name="jobs", db_index=False
    )
    workflow_ref = models.CharField(max_length=200, blank=True, default="", db_default="")
    # Whether a job depends on this one: set (under this row's lock) by the submission that adds the first
    # child, so the recorder reads it from its finish statement and a job without children costs its
    # ending no lookup (jobs.endings).
    has_children = models.BooleanField(default=False, db_default=False)
    # The batch the job joined at submit (jobs.batches).
    batch = models.ForeignKey(
        "Batch", null=True, blank=True, on_delete=models.CASCADE, related_name="jobs", db_index=False
    )

    objects = JobQuerySet.as_manager()

    # Not a column: True on the job a submission got back because it duplicated this one (a unique
    # job within its window). Set on the returned instance only (jobs.client), never stored.
    duplicate: bool = False

    class Meta:
        ordering = ["-created_at"]
        # Claiming and finishing update ``status``, so every update writes a new entry into every
        # index that covers the row: keep the indexes few, and partial where a row needs them
        # only in some states.
        indexes = [
            models.Index(fields=["-created_at"], name="job_created"),
            models.Index(fields=["status", "-created_at"], name="job_status_created"),
            models.Index(fields=["queue", "status"], name="job_queue_status"),
            models.Index(
                fields=["completed_at"],
                name="job_finished",
                condition=Q(status__in=list(FINISHED)),
            ),
            models.Index(fields=["schedule_at"], name="job_due", condition=Q(status__in=list(DELAYED))),
            # The expiry sweep's scan: only waiting jobs that can expire are in it.
            models.Index(
                fields=["expires_at"],
                name="job_expiry",
                condition=Q(expires_at__isnull=False, status__in=list(WAITING)),
            ),
            # A workflow's jobs; a job outside one (most) is not in it, and costs its updates nothing.
            models.Index(fields=["workflow"], name="job_workflow", condition=Q(workflow__isnull=False)),
            models.Index(fields=["batch", "status"], name="job_batch", condition=Q(batch__isnull=False)),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(priority__gte=PRIORITY_MIN, priority__lte=PRIORITY_MAX), name="job_priority_range"
            ),
            models.UniqueConstraint(
                fields=["idempotency_scope", "idempotency_key"],
                name="job_idempotency_scope_key",
                condition=Q(idempotency_key__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id} ({self.status})"

    @property
    def attempt_number(self) -> int:
        """The number of the job's latest attempt, unique over its life (manual retries included)."""
        return self.earlier_attempts + self.attempts

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    @property
    def duration(self) -> float | None:
        if self.started_at and self.completed_at:
            return (self.completed_at - self.started_at).total_seconds()
        return None


class Workflow(models.Model):
    """Jobs submitted together with their dependencies (``POST /api/v1/workflows``); its status is
    derived from its jobs' (:mod:`jobs.service.workflows`), never stored."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"workflow {self.name or self.id}"


class JobDependency(models.Model):
    """One edge: ``child`` waits for the job ``parent_id`` to end (:mod:`jobs.endings`).

    ``parent_id`` is no foreign key: a parent may be deleted, and its children then see it as failed
    (a missing parent never completes). Indexed both ways: by child (the unique pair) to judge a
    child's parents, by parent to find the children of jobs that just ended.
    """

    child = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="+", db_index=False)
    parent_id = models.UUIDField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["child", "parent_id"], name="job_dependency_pair")]
        indexes = [models.Index(fields=["parent_id"], name="job_dependency_parent")]

    def __str__(self) -> str:
        return f"{self.child_id} after {self.parent_id}"


class JobAttempt(models.Model):
    """One run of a job: when, where, and how it ended."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="attempt_set")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(default=timezone.now)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    error = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")
    worker = models.CharField(max_length=200, blank=True, default="")
    duration = models.FloatField(null=True, blank=True, help_text="Seconds.")
    after_manual_retry = models.BooleanField(
        default=False, db_default=False, help_text="The first attempt after a manual retry."
    )

    class Meta:
        ordering = ["job", "number"]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.job_id}: {self.outcome}"


class QueueState(models.Model):
    """Per-queue settings that must survive a Redis loss: paused or not, and the queue's limits and
    its groups' (docs/flow-control.md). A limit left empty takes the configuration's default."""

    name = models.CharField(max_length=64, unique=True)
    paused = models.BooleanField(default=False)
    concurrency = models.PositiveIntegerField(null=True, blank=True, help_text="Jobs of the queue running at once.")
    rate_limit = models.CharField(max_length=32, blank=True, default="", help_text='Starts per period: "100/s".')
    rate_burst = models.PositiveIntegerField(null=True, blank=True, help_text="Starts at once under the rate.")
    group_concurrency = models.PositiveIntegerField(null=True, blank=True, help_text="Jobs of one group at once.")
    group_rate_limit = models.CharField(max_length=32, blank=True, default="", help_text="Starts of one group.")
    group_rate_burst = models.PositiveIntegerField(null=True, blank=True)
    group_weights = models.JSONField(default=dict, blank=True, help_text='Turns per round by group: {"vip": 3}.')
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} ({'paused' if self.paused else 'active'})"


class UniqueClaim(models.Model):
    """A unique job's hold on its key: while it holds, a submission with the same key gets this job.

    ``key`` is the primary key, so two submissions can never both insert it; a later one judges the
    holder under the row's lock (:mod:`jobs.uniqueness`). No foreign key: the job may be deleted,
    and a claim whose job is gone holds nothing.
    """

    key = models.CharField(max_length=255, primary_key=True)
    job_id = models.UUIDField()
    until = models.CharField(max_length=8, help_text="start or finish: when the job lets the key go.")
    expires_at = models.DateTimeField(help_text="The end of the window: the key is free after it.")

    class Meta:
        indexes = [models.Index(fields=["expires_at"], name="unique_claim_expiry")]

    def __str__(self) -> str:
        return f"{self.key} -> {self.job_id} (until {self.until})"


class ApiToken(models.Model):
    """An API token. Only the SHA-256 of its key is stored (see :mod:`jobs.tokens`): whoever reads the
    table or the admin learns who has tokens and their first characters, never a key."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True, default="", help_text="What the token is for.")
    prefix = models.CharField(max_length=8, editable=False, help_text="The key's first characters, to recognise it.")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"
