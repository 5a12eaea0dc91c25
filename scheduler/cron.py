"""Recurring jobs: firing due schedules, and the operator's actions (trigger, pause, resume).

The expressions, their fire times in a zone and the misfire policy are :mod:`scheduler.cron_spec`; its
names are imported from here too.

Exactly once per fire time: see :mod:`scheduler.models`. Firing is a compare-and-set of the schedule's
``next_fire_at`` and the insert of a job whose ``idempotency_key`` names the schedule and the fire time,
in one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from django.db import connection, transaction
from django.db.models import Min
from django.utils import timezone

from jobs.client import enqueue_idempotent
from jobs.idempotency import IdempotencyConflict
from jobs.validation import InvalidJob, JobSpec, validate
from scheduler.cron_spec import (
    MACROS,
    MAX_MISFIRE_GRACE,
    MIN_MISFIRE_GRACE,
    MISFIRE_POLICIES,
    RUN_ONCE,
    SKIP,
    CronSpec,
    InvalidSchedule,
    Plan,
    parse,
    parse_timezone,
    plan,
)

if TYPE_CHECKING:
    from jobs.models import Job
    from scheduler.models import Schedule

__all__ = [
    "MACROS",
    "MAX_MISFIRE_GRACE",
    "MIN_MISFIRE_GRACE",
    "MISFIRE_POLICIES",
    "RUN_ONCE",
    "SKIP",
    "CronSpec",
    "FireReport",
    "Fired",
    "InvalidSchedule",
    "Plan",
    "check",
    "check_template",
    "db_now",
    "fire_due",
    "fire_key",
    "job_spec",
    "parse",
    "parse_timezone",
    "pause",
    "plan",
    "resume",
    "spec_of",
    "step",
    "trigger",
]

logger = logging.getLogger("zipline.scheduler")


# -- firing (database) -------------------------------------------------------------------------------


def db_now() -> datetime:
    """The database server's clock (PostgreSQL), so every scheduler judges due times by one clock."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement_timestamp()")
            row = cursor.fetchone()
        assert row is not None  # SELECT without FROM returns one row
        value: datetime = row[0]
        return value.astimezone(UTC)
    return timezone.now()


def fire_key(schedule_id: int, fire_at: datetime) -> str:
    """The idempotency key of the job for one fire time: unique in the database."""
    return f"schedule:{schedule_id}:{fire_at.astimezone(UTC).isoformat()}"


def spec_of(schedule: Schedule) -> CronSpec:
    return parse(schedule.cron, schedule.timezone)


def job_spec(schedule: Schedule, key: str | None = None) -> JobSpec:
    """The job a schedule submits, from its template."""
    return JobSpec(
        type=schedule.job_type,
        payload=schedule.payload if schedule.payload is not None else {},
        name=schedule.name[:200],
        queue=schedule.queue,
        priority=schedule.priority,
        retry=schedule.retry,
        timeout=schedule.timeout,
        idempotency_key=key,
    )


def check_template(schedule: Schedule) -> None:
    """Refuse a template that would not make a valid job; field names are the API's (``job.type``)."""
    try:
        validate(job_spec(schedule))
    except InvalidJob as exc:
        raise InvalidSchedule(f"job.{exc.field}", exc.message) from None


def check(schedule: Schedule) -> None:
    """Every check a schedule must pass before it is saved (the admin and the API share it)."""
    parse(schedule.cron, schedule.timezone)
    if schedule.misfire_policy not in MISFIRE_POLICIES:
        raise InvalidSchedule(
            "misfire_policy", f"{schedule.misfire_policy!r} is not one of {', '.join(MISFIRE_POLICIES)}"
        )
    grace = schedule.misfire_grace
    if grace is None or not MIN_MISFIRE_GRACE <= grace <= MAX_MISFIRE_GRACE:  # NaN fails both
        raise InvalidSchedule(
            "misfire_grace",
            f"{grace!r} is out of range: seconds from {MIN_MISFIRE_GRACE:g} to {MAX_MISFIRE_GRACE:.0f} (a year)",
        )
    check_template(schedule)


@dataclass(frozen=True)
class Fired:
    """One step taken for a schedule: the fire time (None when missed times were skipped) and its job."""

    schedule_id: int
    fire_at: datetime | None
    job_id: str | None
    created: bool
    skipped: bool


def step(schedule: Schedule, now: datetime) -> Fired | None:
    """Take one step for a due schedule; None if it is not due or another scheduler took the step.

    The compare-and-set on ``next_fire_at`` and the job insert share a transaction, so a crash
    leaves neither, and the job's unique key refuses a second job for the same fire time whatever
    happened to the schedule row (an edit that moved ``next_fire_at`` back, a restored backup).
    """
    if not schedule.enabled or schedule.next_fire_at is None:
        return None
    try:
        spec = spec_of(schedule)
        step_plan = plan(spec, schedule.next_fire_at, now, schedule.misfire_policy, schedule.misfire_grace)
    except InvalidSchedule as exc:
        _disable_broken(schedule, str(exc))
        return None
    if step_plan is None:
        return None
    taken = _take_step(schedule, step_plan)
    if taken is None:
        return None
    job, created = taken
    _log_step(schedule, step_plan, job, created)
    return Fired(
        schedule_id=schedule.pk,
        fire_at=step_plan.fire_at,
        job_id=str(job.pk) if job is not None else None,
        created=created,
        skipped=step_plan.fire_at is None,
    )


def _take_step(schedule: Schedule, step_plan: Plan) -> tuple[Job | None, bool] | None:
    """Move ``next_fire_at`` and submit the fire time's job in one transaction: the job (None when
    skipped or its template is invalid) and whether it is new; None if another scheduler took the step."""
    from scheduler.models import Schedule

    updates: dict[str, object] = {"next_fire_at": step_plan.next_fire_at, "updated_at": timezone.now()}
    if step_plan.fire_at is not None:
        updates["last_fire_at"] = step_plan.fire_at
    with transaction.atomic():
        won = Schedule.objects.filter(pk=schedule.pk, enabled=True, next_fire_at=schedule.next_fire_at).update(
            **updates
        )
        if not won:
            return None
        if step_plan.fire_at is None:
            return None, False
        try:
            return enqueue_idempotent(job_spec(schedule, fire_key(schedule.pk, step_plan.fire_at)))
        except IdempotencyConflict as exc:  # the fire time has its job, made from an older template
            return exc.job, False
        except InvalidJob as exc:
            # Keep the step: retrying a template that cannot make a job would fail every tick.
            logger.error(
                "schedule fire failed: invalid job template",
                extra={
                    "schedule": schedule.name,
                    "schedule_id": schedule.pk,
                    "fire_at": step_plan.fire_at.isoformat(),
                    "error": str(exc),
                },
            )
            return None, False


def _log_step(schedule: Schedule, step_plan: Plan, job: Job | None, created: bool) -> None:
    if step_plan.missed_from is not None:
        logger.warning(
            "schedule missed fire times" + (": ran once" if step_plan.fire_at else ": skipped"),
            extra={
                "schedule": schedule.name,
                "schedule_id": schedule.pk,
                "policy": schedule.misfire_policy,
                "missed_from": step_plan.missed_from.isoformat(),
                "missed_to": step_plan.missed_to.isoformat() if step_plan.missed_to else None,
                "next_fire_at": step_plan.next_fire_at.isoformat(),
            },
        )
    if job is not None:
        logger.info(
            "schedule fired" if created else "schedule fire already had its job",
            extra={
                "schedule": schedule.name,
                "schedule_id": schedule.pk,
                "fire_at": step_plan.fire_at.isoformat() if step_plan.fire_at else None,
                "job_id": str(job.pk),
                "queue": job.queue,
                "next_fire_at": step_plan.next_fire_at.isoformat(),
            },
        )


def _disable_broken(schedule: Schedule, error: str) -> None:
    """A stored expression that no longer parses (edited in the database): pause it, loudly, once."""
    from scheduler.models import Schedule

    Schedule.objects.filter(pk=schedule.pk, enabled=True).update(
        enabled=False, next_fire_at=None, updated_at=timezone.now()
    )
    logger.error(
        "schedule paused: invalid cron or time zone",
        extra={"schedule": schedule.name, "schedule_id": schedule.pk, "error": error},
    )


@dataclass(frozen=True)
class FireReport:
    fired: list[Fired]
    next_in: float | None  # seconds until the next enabled schedule is due (0: more due now)


def fire_due(now: datetime | None = None, limit: int = 100) -> FireReport:
    """Take up to ``limit`` steps for due schedules (earliest first); say when the next one is due."""
    from scheduler.models import Schedule

    now = now or db_now()
    done: list[Fired] = []
    due: Sequence[Schedule] = list(
        Schedule.objects.filter(enabled=True, next_fire_at__lte=now).order_by("next_fire_at")[:limit]
    )
    for schedule in due:
        while len(done) < limit:
            taken = step(schedule, now)
            if taken is None:
                break
            done.append(taken)
            schedule.refresh_from_db(fields=["next_fire_at", "last_fire_at", "enabled"])
    nearest = Schedule.objects.filter(enabled=True).aggregate(m=Min("next_fire_at"))["m"]
    next_in = None if nearest is None else max(0.0, (nearest - now).total_seconds())
    return FireReport(done, next_in)


# -- operator actions --------------------------------------------------------------------------------


def trigger(schedule: Schedule, now: datetime | None = None) -> Job:
    """Submit the schedule's job now, outside its cron times; the cron times are left as they were."""
    now = now or timezone.now()
    try:
        job, _ = enqueue_idempotent(
            job_spec(schedule, f"schedule:{schedule.pk}:trigger:{now.astimezone(UTC).isoformat()}")
        )
    except InvalidJob as exc:
        raise InvalidSchedule(f"job.{exc.field}", exc.message) from None
    logger.info(
        "schedule triggered",
        extra={"schedule": schedule.name, "schedule_id": schedule.pk, "job_id": str(job.pk), "queue": job.queue},
    )
    return job


def pause(schedule: Schedule) -> Schedule:
    """Stop firing until resumed; fire times while paused are not run later."""
    if schedule.enabled:
        schedule.enabled = False
        schedule.save()
        logger.info("schedule paused", extra={"schedule": schedule.name, "schedule_id": schedule.pk})
    return schedule


def resume(schedule: Schedule) -> Schedule:
    """Fire again from the next fire time after now."""
    if not schedule.enabled:
        schedule.enabled = True
        schedule.save()
        logger.info(
            "schedule resumed",
            extra={
                "schedule": schedule.name,
                "schedule_id": schedule.pk,
                "next_fire_at": schedule.next_fire_at.isoformat() if schedule.next_fire_at else None,
            },
        )
    return schedule
