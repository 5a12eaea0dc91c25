"""Recurring (cron) jobs.

A :class:`Schedule` has a cron expression, a time zone, a job template (type, payload, queue, priority,
retry, timeout), a misfire policy, and its last and next fire times. Managed in the admin and over REST
(``/api/v1/schedules``).

Exactly one job per fire time, with any number of schedulers and across restarts, comes from the
database, not from a lock:

1. A scheduler fires a schedule by a compare-and-set: ``UPDATE ... SET next_fire_at = <following>
   WHERE id = ... AND next_fire_at = <the fire time it read>``. Only one scheduler's update matches;
   the others update no row and move on.
2. In the same transaction it inserts the job with ``idempotency_key = "schedule:<id>:<fire time in
   UTC, ISO 8601>"``. ``jobs.Job.idempotency_key`` is UNIQUE (in the scheduler's scope), so even if the schedule row is moved
   back (an edit, a restored backup, a bug), the database refuses a second job for that fire time.

We use the job's unique key rather than a separate ``ScheduleFire`` table with
``UNIQUE(schedule, fire_at)``: it gives the same guarantee with one insert instead of two, and the fire
record is the job itself (find it by its key). The key outlives the fire only as long as the job: once
retention deletes the job, step 1 still holds, because ``next_fire_at`` only moves forward.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models
from django.utils import timezone as dj_timezone

from jobs.models import PRIORITY_MAX, PRIORITY_MIN


class MisfirePolicy(models.TextChoices):
    SKIP = "skip", "skip missed fire times"
    RUN_ONCE = "run_once", "run once for all missed fire times"


# The fields that decide the fire times: a save that changes one recomputes next_fire_at.
_TIMING = ("cron", "timezone", "enabled")
# Errors from scheduler.cron name the API's fields; the admin form shows them on the model's fields.
_FORM_FIELDS = {
    "job.type": "job_type",
    "job.payload": "payload",
    "job.queue": "queue",
    "job.priority": "priority",
    "job.timeout": "timeout",
    "job.name": "name",
}
# ... and errors inside one: job.retry.max_delay, job.payload.subject (a processor's payload check).
_FORM_PREFIXES = (("job.retry", "retry"), ("job.payload", "payload"))


class Schedule(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True, default="")
    cron = models.CharField(
        max_length=200,
        help_text="5 fields (minute hour day month weekday), 6 with seconds first, or @hourly, @daily, @weekly, @monthly, @yearly.",
    )
    timezone = models.CharField(max_length=64, default="UTC", help_text="IANA time zone, e.g. UTC or Europe/Paris.")
    job_type = models.CharField(max_length=100)
    payload = models.JSONField(default=dict, blank=True)
    queue = models.CharField(max_length=64, default="default")
    priority = models.SmallIntegerField(default=0)
    retry = models.JSONField(
        null=True,
        blank=True,
        help_text="max_retries, backoff, initial_delay, max_delay, jitter; empty: the job type's defaults.",
    )
    timeout = models.FloatField(null=True, blank=True, help_text="Seconds one attempt may run; empty: the default.")
    enabled = models.BooleanField(default=True, help_text="A paused schedule does not fire.")
    misfire_policy = models.CharField(max_length=16, choices=MisfirePolicy.choices, default=MisfirePolicy.SKIP)
    misfire_grace = models.FloatField(
        default=60.0,
        help_text="Seconds a fire time may be late and still fire; older ones were missed (see the misfire policy).",
    )
    last_fire_at = models.DateTimeField(null=True, blank=True, editable=False)
    next_fire_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=dj_timezone.now, editable=False)
    updated_at = models.DateTimeField(default=dj_timezone.now, editable=False)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["enabled", "next_fire_at"], name="schedule_due")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(priority__gte=PRIORITY_MIN, priority__lte=PRIORITY_MAX),
                name="schedule_priority_range",
            ),
            models.CheckConstraint(
                condition=models.Q(misfire_policy__in=[c.value for c in MisfirePolicy]), name="schedule_misfire_policy"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.cron} {self.timezone})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Recompute the next fire time when the timing changed; otherwise never write the fire times.

        The schedulers move ``last_fire_at``/``next_fire_at`` by conditional updates; an admin save of a
        form loaded earlier must not move them back.
        """
        from scheduler.cron import parse

        adding = self._state.adding
        timing_changed = adding or getattr(self, "_loaded_timing", None) != self._timing()
        self.updated_at = dj_timezone.now()
        if timing_changed:
            self.next_fire_at = parse(self.cron, self.timezone).next_after(self.updated_at) if self.enabled else None
        elif "update_fields" not in kwargs:
            kwargs["update_fields"] = [
                f.name for f in self._meta.concrete_fields if f.name not in ("id", "last_fire_at", "next_fire_at")
            ]
        super().save(*args, **kwargs)
        self._loaded_timing = self._timing()

    @property
    def paused(self) -> bool:
        return not self.enabled

    @classmethod
    def from_db(cls, db: Any, field_names: Any, values: Any) -> Schedule:
        instance = super().from_db(db, field_names, values)
        if set(_TIMING) <= set(field_names):  # not for a partial load (deferred fields)
            instance._loaded_timing = instance._timing()
        return instance

    def refresh_from_db(self, *args: Any, **kwargs: Any) -> None:
        super().refresh_from_db(*args, **kwargs)
        self._loaded_timing = self._timing()

    def _timing(self) -> tuple[str, str, bool]:
        return (self.cron, self.timezone, self.enabled)  # the fields in _TIMING

    def clean(self) -> None:
        from scheduler.cron import InvalidSchedule, check

        try:
            check(self)
        except InvalidSchedule as exc:
            field = _FORM_FIELDS.get(exc.field) or next(
                (name for prefix, name in _FORM_PREFIXES if exc.field.startswith(prefix)), exc.field
            )
            known = {f.name for f in self._meta.fields}
            raise ValidationError({field if field in known else NON_FIELD_ERRORS: exc.message}) from None
