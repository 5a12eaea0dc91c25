"""The batch row (issue 15.3): jobs that join it at submit, and callbacks enqueued once when they end.

Defined here, imported by :mod:`jobs.models` (the app's models module), to keep that module small.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class Batch(models.Model):
    """Jobs that join it at submit while it is open; when it is closed and every one has ended, its
    callbacks are enqueued exactly once, in the transaction of the last ending (:mod:`jobs.batches`).

    ``unended`` counts the jobs that joined and have not ended (a manual retry counts one again), so
    the last ending is known without counting the batch's jobs; the counters shown are counted from
    the jobs themselves.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    closed = models.BooleanField(default=False, help_text="No job may join any more.")
    unended = models.PositiveIntegerField(default=0, help_text="Jobs joined that have not ended.")
    # Each a job to enqueue (a job submission's fields) or null.
    on_success = models.JSONField(null=True, blank=True, help_text="Enqueued once if every job completed.")
    on_failure = models.JSONField(null=True, blank=True, help_text="Enqueued once if a job did not complete.")
    on_complete = models.JSONField(null=True, blank=True, help_text="Enqueued once when every job has ended.")
    finished_at = models.DateTimeField(null=True, blank=True, help_text="When its last job ended (closed).")
    outcome = models.CharField(max_length=8, blank=True, default="", help_text="success or failure, once finished.")
    callbacks = models.JSONField(default=dict, blank=True, help_text="The callback jobs enqueued, by name.")
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "batches"

    def __str__(self) -> str:
        return f"batch {self.name or self.id}"
