"""Recurring jobs: cron parsing and validation, fire times, the misfire policy, and firing.

Expressions have five fields (``minute hour day-of-month month day-of-week``), six with a leading
seconds field (``second minute hour day-of-month month day-of-week``, as in Quartz and Spring), or are
one of ``@yearly @annually @monthly @weekly @daily @midnight @hourly``. They are evaluated in the
schedule's IANA time zone.

Time zones: croniter's own handling of zone-aware times is wrong around DST changes, so the expression
is walked in naive wall-clock time and each wall time is turned into an instant with ``fold=0``:

- a wall time that occurs twice (clocks go back) fires once, at its first occurrence;
- a wall time that does not exist (clocks go forward) fires at the same instant as the wall time one
  gap later (02:30 on a spring-forward night fires at 03:30), and an instant never fires twice.

Schedules that must fire at even real-time intervals through DST changes should use ``UTC``.

Misfires: a fire time more than ``misfire_grace`` seconds in the past was missed (the schedulers were
down). ``skip`` drops missed fire times; ``run_once`` coalesces them into one job, for the latest
missed fire time. Fire times within the grace are fired normally, late.

Exactly once per fire time: see :mod:`scheduler.models`. Firing is a compare-and-set of the schedule's
``next_fire_at`` and the insert of a job whose ``idempotency_key`` names the schedule and the fire time,
in one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter
from django.db import connection, transaction
from django.db.models import Min
from django.utils import timezone

from jobs.client import enqueue_idempotent
from jobs.idempotency import IdempotencyConflict
from jobs.validation import InvalidJob, JobSpec, validate

if TYPE_CHECKING:
    from jobs.models import Job
    from scheduler.models import Schedule

logger = logging.getLogger("zipline.scheduler")

MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
SKIP = "skip"
RUN_ONCE = "run_once"
MISFIRE_POLICIES = (SKIP, RUN_ONCE)
# A step is always a little late; a smaller grace would count every fire time as missed.
MIN_MISFIRE_GRACE = 1.0
# A year: longer is no longer "late" but a backlog, and far longer cannot be a date's distance.
MAX_MISFIRE_GRACE = 365 * 86400.0
# Enough to walk through one repeated DST hour of a schedule that fires every second.
_MAX_STEPS = 10_000
_FORMS = "5 fields (minute hour day month weekday), 6 with seconds first, or " + "/".join(MACROS)


class InvalidSchedule(ValueError):  # noqa: N818 - named like jobs.validation.InvalidJob
    """A schedule ZipLine refuses; ``field`` names the offending field (``cron``, ``timezone``, ``job.type``)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


# -- parsing (pure) ----------------------------------------------------------------------------------


def parse_timezone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; a clear :class:`InvalidSchedule` for anything else."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidSchedule("timezone", "is required (an IANA name such as UTC or Europe/Paris)")
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidSchedule("timezone", f"{name!r} is not a known IANA time zone (e.g. UTC, Europe/Paris)") from None


@dataclass(frozen=True)
class CronSpec:
    """A parsed expression in its zone; computes fire times as aware UTC datetimes."""

    expression: str
    tz: ZoneInfo
    seconds: bool

    def _iter(self, start: datetime, backwards: bool = False) -> croniter:
        local = start.astimezone(self.tz).replace(tzinfo=None)
        return croniter(self.expression, local, is_prev=backwards, second_at_beginning=self.seconds or None)

    def _instant(self, wall: datetime) -> datetime:
        return wall.replace(tzinfo=self.tz, fold=0).astimezone(UTC)

    def next_after(self, after: datetime) -> datetime:
        """The first fire time strictly after ``after``. Raises :class:`InvalidSchedule` if there is none."""
        it = self._iter(after)
        try:
            for _ in range(_MAX_STEPS):
                instant = self._instant(it.get_next(datetime))
                if instant > after:
                    return instant
        except CroniterBadDateError:
            pass
        raise InvalidSchedule("cron", f"{self.expression!r} never matches a date after {after.isoformat()}")

    def last_before(self, before: datetime) -> datetime | None:
        """The last fire time strictly before ``before``, or None."""
        it = self._iter(before, backwards=True)
        try:
            for _ in range(_MAX_STEPS):
                instant = self._instant(it.get_prev(datetime))
                if instant < before:
                    return instant
        except CroniterBadDateError:
            return None
        return None


def parse(expression: str, timezone_name: str = "UTC", now: datetime | None = None) -> CronSpec:
    """Check an expression and a zone; raise :class:`InvalidSchedule` naming the bad one.

    An expression that can never fire (``0 0 31 2 *``) is refused too.
    """
    tz = parse_timezone(timezone_name)
    if not isinstance(expression, str) or not expression.strip():
        raise InvalidSchedule("cron", f"is required: {_FORMS}")
    text = " ".join(expression.split())
    fields = text.split(" ")
    if text.startswith("@"):
        if text.lower() not in MACROS:
            raise InvalidSchedule("cron", f"{expression!r} is not one of {', '.join(MACROS)}")
        text, seconds = text.lower(), False
    elif len(fields) in (5, 6):
        seconds = len(fields) == 6
    else:
        raise InvalidSchedule("cron", f"{expression!r} has {len(fields)} fields; expected {_FORMS}")
    try:
        croniter(text, datetime(2000, 1, 1), second_at_beginning=seconds or None)
    except (CroniterError, ValueError, KeyError) as exc:
        raise InvalidSchedule("cron", f"{expression!r} is not a valid cron expression: {exc}") from None
    spec = CronSpec(text, tz, seconds)
    start = now or timezone.now()
    try:
        spec.next_after(start)
    except InvalidSchedule:
        raise InvalidSchedule("cron", f"{expression!r} never matches a date (e.g. 31 February)") from None
    return spec


# -- misfire (pure) ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What to do with a due schedule: fire ``fire_at`` (or nothing), then wait for ``next_fire_at``."""

    fire_at: datetime | None
    next_fire_at: datetime
    missed_from: datetime | None = None
    missed_to: datetime | None = None


def plan(spec: CronSpec, due: datetime, now: datetime, policy: str, grace: float) -> Plan | None:
    """The step for a schedule whose next fire time is ``due``; None when it is not due yet.

    One step fires at most one job, so a schedule that is due several times is walked through one fire
    time per transaction.
    """
    if due > now:
        return None
    cutoff = now - timedelta(seconds=min(max(MIN_MISFIRE_GRACE, grace), MAX_MISFIRE_GRACE))
    if due >= cutoff:
        return Plan(fire_at=due, next_fire_at=spec.next_after(due))
    # Missed: ``due`` and every fire time before ``cutoff``. Resume at the first one not missed.
    resume = spec.next_after(cutoff - timedelta(microseconds=1))
    last_missed = spec.last_before(cutoff) or due
    last_missed = max(last_missed, due)
    fire_at = last_missed if policy == RUN_ONCE else None
    return Plan(fire_at=fire_at, next_fire_at=resume, missed_from=due, missed_to=last_missed)


# -- firing (database) -------------------------------------------------------------------------------


def db_now() -> datetime:
    """The database server's clock (PostgreSQL), so every scheduler judges due times by one clock."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement_timestamp()")
            value = cursor.fetchone()[0]
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
    from scheduler.models import Schedule

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
    updates: dict[str, object] = {"next_fire_at": step_plan.next_fire_at, "updated_at": timezone.now()}
    if step_plan.fire_at is not None:
        updates["last_fire_at"] = step_plan.fire_at
    job: Job | None = None
    created = False
    with transaction.atomic():
        won = Schedule.objects.filter(pk=schedule.pk, enabled=True, next_fire_at=schedule.next_fire_at).update(
            **updates
        )
        if not won:
            return None
        if step_plan.fire_at is not None:
            try:
                job, created = enqueue_idempotent(job_spec(schedule, fire_key(schedule.pk, step_plan.fire_at)))
            except IdempotencyConflict as exc:  # the fire time has its job, made from an older template
                job = exc.job
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
    return Fired(
        schedule_id=schedule.pk,
        fire_at=step_plan.fire_at,
        job_id=str(job.pk) if job is not None else None,
        created=created,
        skipped=step_plan.fire_at is None,
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
