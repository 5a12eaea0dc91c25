"""Recurring jobs: parsing and validation, fire times across DST, misfire policies, and exactly one job
per fire time (concurrent firing, restarts, a schedule row moved back)."""

from __future__ import annotations

import logging
import math
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from jobs.broker import Broker
from jobs.models import Job, Status
from scheduler import cron
from scheduler.cron import InvalidSchedule, parse, plan
from scheduler.models import Schedule

T0 = datetime(2030, 1, 7, 12, 0, tzinfo=UTC)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# -- parsing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("*/15 * * * *", utc(2030, 1, 1, 10, 7), utc(2030, 1, 1, 10, 15)),
        ("0 3 * * *", utc(2030, 1, 1, 3, 0), utc(2030, 1, 2, 3, 0)),
        ("@hourly", utc(2030, 1, 1, 10, 0, 0), utc(2030, 1, 1, 11, 0)),
        ("@daily", utc(2030, 1, 1, 10, 0), utc(2030, 1, 2, 0, 0)),
        ("@weekly", utc(2030, 1, 1, 10, 0), utc(2030, 1, 6, 0, 0)),
        ("* * * * * *", utc(2030, 1, 1, 10, 0, 0), utc(2030, 1, 1, 10, 0, 1)),
        ("*/10 * * * * *", utc(2030, 1, 1, 10, 0, 4), utc(2030, 1, 1, 10, 0, 10)),
        ("30 0 * * * *", utc(2030, 1, 1, 10, 0, 31), utc(2030, 1, 1, 11, 0, 30)),
    ],
)
def test_next_fire_times_in_utc(expression: str, after: datetime, expected: datetime) -> None:
    assert parse(expression, "UTC").next_after(after) == expected


def test_six_fields_put_seconds_first() -> None:
    spec = parse("5 0 0 * * *", "UTC")
    assert spec.seconds
    assert spec.next_after(utc(2030, 1, 1, 10, 0)) == utc(2030, 1, 2, 0, 0, 5)


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("", "is required"),
        ("bad", "has 1 fields"),
        ("* * * *", "has 4 fields"),
        ("* * * * * * *", "has 7 fields"),
        ("61 * * * *", "not a valid cron expression"),
        ("* * * 13 *", "not a valid cron expression"),
        ("60 * * * * *", "not a valid cron expression"),
        ("@reboot", "is not one of @yearly"),
        ("0 0 31 2 *", "never matches"),
    ],
)
def test_bad_expressions_are_refused_with_a_clear_error(expression: str, fragment: str) -> None:
    with pytest.raises(InvalidSchedule) as caught:
        parse(expression, "UTC")
    assert caught.value.field == "cron"
    assert fragment in caught.value.message


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "UTC+2", "../etc/passwd"])
def test_bad_time_zones_are_refused(zone: str) -> None:
    with pytest.raises(InvalidSchedule) as caught:
        parse("0 * * * *", zone)
    assert caught.value.field == "timezone"


def test_time_zone_shifts_fire_times() -> None:
    assert parse("0 9 * * *", "America/New_York").next_after(utc(2030, 1, 1, 0, 0)) == utc(2030, 1, 1, 14, 0)
    assert parse("0 9 * * *", "Asia/Kolkata").next_after(utc(2030, 1, 1, 0, 0)) == utc(2030, 1, 1, 3, 30)


def test_spring_forward_runs_a_skipped_wall_time_once_after_the_gap() -> None:
    # Europe/Paris, 2025-03-30: 02:00 CET jumps to 03:00 CEST. 02:30 does not exist that night.
    spec = parse("30 2 * * *", "Europe/Paris")
    first = spec.next_after(utc(2025, 3, 29, 12, 0))
    assert first == utc(2025, 3, 30, 1, 30)  # 03:30 CEST
    assert spec.next_after(first) == utc(2025, 3, 31, 0, 30)  # 02:30 CEST the next night


def test_fall_back_runs_a_repeated_wall_time_once() -> None:
    # Europe/Paris, 2025-10-26: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
    spec = parse("30 2 * * *", "Europe/Paris")
    first = spec.next_after(utc(2025, 10, 25, 12, 0))
    assert first == utc(2025, 10, 26, 0, 30)  # the first 02:30 (CEST)
    assert spec.next_after(first) == utc(2025, 10, 27, 1, 30)  # not the second 02:30 an hour later


def test_fire_times_strictly_increase_through_dst_changes() -> None:
    for start in (utc(2025, 3, 29, 22, 0), utc(2025, 10, 25, 22, 0)):
        spec = parse("*/20 * * * *", "Europe/Paris")
        times = [start]
        for _ in range(30):
            times.append(spec.next_after(times[-1]))
        assert all(b > a for a, b in zip(times, times[1:], strict=False))
        assert len(set(times)) == len(times)


def test_last_before_is_strict() -> None:
    spec = parse("0 * * * *", "UTC")
    assert spec.last_before(utc(2030, 1, 1, 10, 0)) == utc(2030, 1, 1, 9, 0)
    assert spec.last_before(utc(2030, 1, 1, 10, 0, 1)) == utc(2030, 1, 1, 10, 0)


# -- misfire plan (pure) ----------------------------------------------------------------------------


def test_plan_not_due_yet() -> None:
    assert plan(parse("* * * * *"), T0, T0 - timedelta(seconds=1), cron.SKIP, 60) is None


def test_plan_fires_on_time_and_late_within_grace() -> None:
    spec = parse("* * * * *")
    on_time = plan(spec, T0, T0, cron.SKIP, 60)
    assert on_time is not None and on_time.fire_at == T0 and on_time.next_fire_at == T0 + timedelta(minutes=1)
    late = plan(spec, T0, T0 + timedelta(seconds=59), cron.SKIP, 60)
    assert late is not None and late.fire_at == T0 and late.missed_from is None


@pytest.mark.parametrize("grace", [float("inf"), 1e300, float("nan")])
def test_plan_takes_a_stored_grace_out_of_range_as_its_nearest_bound(grace: float) -> None:
    # check() refuses these; a row written around it must still not stop the scheduler.
    spec = parse("* * * * *")
    step = plan(spec, T0, T0 + timedelta(days=400), cron.SKIP, grace)
    assert step is not None and step.missed_from == T0  # over a year late: missed, whatever the grace
    step = plan(spec, T0, T0 + timedelta(days=300), cron.SKIP, grace)
    within_grace = not math.isnan(grace)  # NaN counts as the least grace, 1 s
    assert step is not None and step.fire_at == (T0 if within_grace else None)


def test_plan_skips_missed_fire_times() -> None:
    spec = parse("* * * * *")
    now = T0 + timedelta(minutes=10, seconds=30)
    step = plan(spec, T0, now, cron.SKIP, 5)
    assert step is not None and step.fire_at is None
    assert step.next_fire_at == T0 + timedelta(minutes=11)
    assert (step.missed_from, step.missed_to) == (T0, T0 + timedelta(minutes=10))


def test_plan_never_uses_a_grace_below_one_second() -> None:
    step = plan(parse("* * * * *"), T0, T0 + timedelta(milliseconds=300), cron.SKIP, 0)
    assert step is not None and step.fire_at == T0


def test_plan_runs_missed_fire_times_once() -> None:
    spec = parse("* * * * *")
    now = T0 + timedelta(minutes=10, seconds=30)
    step = plan(spec, T0, now, cron.RUN_ONCE, 5)
    assert step is not None and step.fire_at == T0 + timedelta(minutes=10)
    assert step.next_fire_at == T0 + timedelta(minutes=11)


# -- firing against the database --------------------------------------------------------------------

pytestmark_db = pytest.mark.django_db(transaction=True)


def make_schedule(**fields: object) -> Schedule:
    values: dict[str, object] = {
        "name": "every-minute",
        "cron": "* * * * *",
        "job_type": "test_noop",
        "payload": {"n": 1},
        "queue": "cronq",
        "priority": 7,
    }
    values.update(fields)
    schedule = Schedule(**values)
    schedule.full_clean()
    schedule.save()
    Schedule.objects.filter(pk=schedule.pk).update(next_fire_at=T0)
    schedule.refresh_from_db()
    return schedule


def cron_jobs(schedule: Schedule) -> list[Job]:
    return list(Job.objects.filter(idempotency_key__startswith=f"schedule:{schedule.pk}:").order_by("idempotency_key"))


@pytestmark_db
def test_a_new_schedule_gets_its_next_fire_time() -> None:
    schedule = Schedule.objects.create(name="s", cron="0 * * * *", job_type="test_noop")
    assert schedule.next_fire_at is not None and schedule.next_fire_at.minute == 0
    paused = Schedule.objects.create(name="p", cron="0 * * * *", job_type="test_noop", enabled=False)
    assert paused.next_fire_at is None


@pytestmark_db
@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"cron": "99 * * * *"}, "cron"),
        ({"timezone": "Nowhere/City"}, "timezone"),
        ({"job_type": "no_such_type"}, "job_type"),
        ({"payload": ["not", "an", "object"]}, "payload"),
        ({"priority": 500}, "priority"),
        ({"retry": {"max_retries": -1}}, "retry"),
        ({"queue": "bad queue!"}, "queue"),
    ],
)
def test_model_validation_names_the_field(fields: dict[str, object], field: str) -> None:
    schedule = Schedule(**{"name": "x", "cron": "* * * * *", "job_type": "test_noop", **fields})
    with pytest.raises(ValidationError) as caught:
        schedule.full_clean()
    assert field in caught.value.message_dict


@pytestmark_db
def test_due_schedule_fires_one_job_with_its_template(broker: Broker) -> None:
    schedule = make_schedule()
    report = cron.fire_due(now=T0 + timedelta(seconds=1))
    assert [(f.fire_at, f.created) for f in report.fired] == [(T0, True)]
    [job] = cron_jobs(schedule)
    assert (job.type, job.payload, job.queue, job.priority, job.name) == (
        "test_noop",
        {"n": 1},
        "cronq",
        7,
        "every-minute",
    )
    assert job.idempotency_key == f"schedule:{schedule.pk}:{T0.isoformat()}"
    assert job.status == Status.PENDING
    assert str(job.pk) in broker.ids("cronq")["ready"]
    schedule.refresh_from_db()
    assert schedule.last_fire_at == T0 and schedule.next_fire_at == T0 + timedelta(minutes=1)
    assert report.next_in == pytest.approx(59.0)


@pytestmark_db
def test_a_restarted_scheduler_does_not_fire_again(broker: Broker) -> None:
    schedule = make_schedule()
    now = T0 + timedelta(seconds=1)
    assert len(cron.fire_due(now=now).fired) == 1
    # A new scheduler process, the same moment: the schedule already moved on.
    assert cron.fire_due(now=now).fired == []
    assert len(cron_jobs(schedule)) == 1


@pytestmark_db
def test_the_unique_key_refuses_a_second_job_when_the_row_is_moved_back(broker: Broker) -> None:
    schedule = make_schedule()
    cron.fire_due(now=T0 + timedelta(seconds=1))
    # A stale write (a form saved from an old page, a restored backup) moves next_fire_at back.
    Schedule.objects.filter(pk=schedule.pk).update(next_fire_at=T0)
    report = cron.fire_due(now=T0 + timedelta(seconds=2))
    assert [(f.fire_at, f.created) for f in report.fired] == [(T0, False)]
    assert len(cron_jobs(schedule)) == 1


@pytestmark_db
def test_catch_up_within_grace_fires_each_fire_time_once(broker: Broker) -> None:
    schedule = make_schedule(cron="*/10 * * * * *", misfire_grace=120)
    report = cron.fire_due(now=T0 + timedelta(seconds=55))
    assert [f.fire_at for f in report.fired] == [T0 + timedelta(seconds=s) for s in range(0, 60, 10)]
    assert len(cron_jobs(schedule)) == 6


@pytestmark_db
def test_concurrent_schedulers_fire_each_time_exactly_once(broker: Broker) -> None:
    schedule = make_schedule(cron="* * * * * *", misfire_grace=3600)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def scheduler(offset: float) -> None:
        try:
            barrier.wait()
            for i in range(20):
                cron.fire_due(now=T0 + timedelta(seconds=i + offset), limit=5)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=scheduler, args=(o,)) for o in (0.0, 0.1, 0.2, 0.3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    keys = [j.idempotency_key for j in cron_jobs(schedule)]
    assert keys == sorted({cron.fire_key(schedule.pk, T0 + timedelta(seconds=i)) for i in range(20)})


@pytestmark_db
@pytest.mark.parametrize(("policy", "expected"), [(cron.SKIP, []), (cron.RUN_ONCE, [T0 + timedelta(minutes=10)])])
def test_missed_fire_times_after_downtime(
    broker: Broker, policy: str, expected: list[datetime], caplog: pytest.LogCaptureFixture
) -> None:
    schedule = make_schedule(misfire_policy=policy, misfire_grace=5)
    caplog.set_level(logging.INFO, logger="zipline.scheduler")
    now = T0 + timedelta(minutes=10, seconds=30)  # down for ten and a half minutes
    cron.fire_due(now=now)
    assert [j.idempotency_key for j in cron_jobs(schedule)] == [cron.fire_key(schedule.pk, t) for t in expected]
    schedule.refresh_from_db()
    assert schedule.next_fire_at == T0 + timedelta(minutes=11)
    [line] = [r for r in caplog.records if r.getMessage().startswith("schedule missed fire times")]
    assert line.policy == policy and line.missed_from == T0.isoformat()  # type: ignore[attr-defined]
    # Back to normal afterwards.
    cron.fire_due(now=T0 + timedelta(minutes=11, seconds=1))
    assert len(cron_jobs(schedule)) == len(expected) + 1


@pytestmark_db
def test_paused_schedule_does_not_fire_and_resumes_from_now(broker: Broker) -> None:
    schedule = make_schedule()
    cron.pause(schedule)
    assert Schedule.objects.get(pk=schedule.pk).next_fire_at is None
    assert cron.fire_due(now=T0 + timedelta(hours=1)).fired == []
    cron.resume(schedule)
    schedule.refresh_from_db()
    # From the real clock, not from the fire time it had when paused: nothing is caught up.
    now = timezone.now()
    assert schedule.enabled and schedule.next_fire_at is not None
    assert now < schedule.next_fire_at <= now + timedelta(minutes=1)
    assert cron_jobs(schedule) == []


@pytestmark_db
def test_trigger_submits_now_and_keeps_the_cron_times(broker: Broker) -> None:
    schedule = make_schedule()
    job = cron.trigger(schedule)
    assert job.status == Status.PENDING and (job.idempotency_key or "").startswith(f"schedule:{schedule.pk}:trigger:")
    assert Schedule.objects.get(pk=schedule.pk).next_fire_at == T0


@pytestmark_db
def test_saving_an_old_form_does_not_move_the_fire_times_back(broker: Broker) -> None:
    schedule = make_schedule()
    stale = Schedule.objects.get(pk=schedule.pk)
    cron.fire_due(now=T0 + timedelta(seconds=1))
    stale.description = "edited"
    stale.save()
    fresh = Schedule.objects.get(pk=schedule.pk)
    assert fresh.description == "edited" and fresh.next_fire_at == T0 + timedelta(minutes=1)
    stale.cron = "0 * * * *"  # a timing change recomputes from now
    stale.save()
    assert Schedule.objects.get(pk=schedule.pk).next_fire_at.minute == 0  # type: ignore[union-attr]


@pytestmark_db
def test_a_template_that_became_invalid_is_logged_and_skipped(broker: Broker, caplog: pytest.LogCaptureFixture) -> None:
    schedule = make_schedule()
    Schedule.objects.filter(pk=schedule.pk).update(job_type="unregistered_type")
    caplog.set_level(logging.ERROR, logger="zipline.scheduler")
    cron.fire_due(now=T0 + timedelta(seconds=1))
    assert cron_jobs(schedule) == []
    assert Schedule.objects.get(pk=schedule.pk).next_fire_at == T0 + timedelta(minutes=1)
    assert any("invalid job template" in r.getMessage() for r in caplog.records)


@pytestmark_db
def test_a_broken_expression_in_the_database_pauses_the_schedule(broker: Broker) -> None:
    schedule = make_schedule()
    Schedule.objects.filter(pk=schedule.pk).update(cron="not a cron")
    assert cron.fire_due(now=T0 + timedelta(seconds=1)).fired == []
    assert not Schedule.objects.get(pk=schedule.pk).enabled
