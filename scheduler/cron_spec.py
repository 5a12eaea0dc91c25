"""Cron expressions (pure): parsing and validation, fire times in a time zone, and the misfire policy.

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

The database side (firing, the operator's actions) is :mod:`scheduler.cron`, which exports these names too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter
from django.utils import timezone

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
