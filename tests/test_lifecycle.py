"""The lifecycle table drives the code: the state machine, the batched SQL and the queryset all read it."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from jobs import batch_sql, lifecycle, states
from jobs.lifecycle import MOVES, Verb
from jobs.models import Job, JobQuerySet, Status

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent

# The state machine as it was written out by hand before the table existed: the table must imply it.
# ``expired`` came later: only a job that has not started can expire, and it is final. ``waiting``
# (blocked) later still: only its parents' endings move it on, and it can be cancelled.
EXPECTED = {
    Status.PENDING: {Status.RUNNING, Status.CANCELLED, Status.EXPIRED},
    Status.SCHEDULED: {Status.PENDING, Status.RUNNING, Status.CANCELLED, Status.EXPIRED},
    Status.RETRYING: {Status.PENDING, Status.RUNNING, Status.CANCELLED, Status.EXPIRED},
    Status.RUNNING: {Status.COMPLETED, Status.RETRYING, Status.FAILED, Status.CANCELLED, Status.PENDING},
    Status.FAILED: {Status.PENDING},
    Status.CANCELLED: {Status.PENDING},
    Status.COMPLETED: set(),
    Status.EXPIRED: set(),
    Status.BLOCKED: {Status.PENDING, Status.SCHEDULED, Status.CANCELLED},
}


def one_in_each_state() -> dict[Status, Job]:
    past = timezone.now() - timedelta(minutes=1)
    return {status: Job.objects.create(type="test_noop", status=status, schedule_at=past) for status in Status}


def test_the_verbs_imply_the_state_machine() -> None:
    assert lifecycle.transitions() == EXPECTED
    assert states.TRANSITIONS == EXPECTED


def test_every_ending_of_an_attempt_starts_from_the_same_states() -> None:
    """The finish statement is keyed on one set of source states for every ending."""
    assert {lifecycle.sources(verb) for verb in lifecycle.ENDINGS} == {(Status.RUNNING,)}


def test_a_verb_without_a_target_has_none() -> None:
    with pytest.raises(ValueError, match="request_cancel changes no status"):
        lifecycle.target(Verb.REQUEST_CANCEL)


@pytest.mark.parametrize("verb", [v for v in Verb if MOVES[v].target is not None])
def test_transition_changes_exactly_the_source_states(verb: Verb) -> None:
    jobs = one_in_each_state()
    changed = states.transition(verb, Job.objects.all(), updated_at=timezone.now())
    assert changed == len(lifecycle.sources(verb))
    after = dict(Job.objects.values_list("pk", "status"))
    for status, job in jobs.items():
        expected = lifecycle.target(verb) if status in lifecycle.sources(verb) else status
        assert after[job.pk] == expected, f"{verb}: a {status} job became {after[job.pk]}"


def test_queryset_groups_match_the_table() -> None:
    jobs = one_in_each_state()
    Job.objects.create(type="test_noop", status=Status.RETRYING, schedule_at=timezone.now() + timedelta(hours=1))

    def statuses(rows: JobQuerySet) -> set[str]:
        """The states of the one-per-state jobs among ``rows``."""
        picked = set(rows.values_list("pk", flat=True))
        return {job.status for job in jobs.values() if job.pk in picked}

    assert statuses(Job.objects.waiting()) == {"pending", "scheduled", "retrying"}
    assert statuses(Job.objects.live()) == {"pending", "scheduled", "retrying", "running"}
    assert statuses(Job.objects.running()) == {"running"}
    assert statuses(Job.objects.not_running()) == {s.value for s in Status} - {"running"}
    assert statuses(Job.objects.finished()) == {"completed", "failed", "cancelled", "expired"}
    due = Job.objects.due(timezone.now())
    assert {job.pk for job in due} == {jobs[Status.SCHEDULED].pk, jobs[Status.RETRYING].pk}, "not yet due is left out"
    for verb in Verb:
        assert statuses(Job.objects.able_to(verb)) == set(lifecycle.sources(verb)), verb


def test_due_in_sql_and_in_python_agree() -> None:
    now = timezone.now()
    when = {"past": now - timedelta(minutes=1), "future": now + timedelta(minutes=1), "none": None}
    jobs = {
        (status, name): Job.objects.create(type="test_noop", status=status, schedule_at=at)
        for status in Status
        for name, at in when.items()
    }
    in_sql = set(Job.objects.due(now).values_list("pk", flat=True))
    for (status, name), job in jobs.items():
        assert (job.pk in in_sql) == lifecycle.is_due(status, job.schedule_at, now), (status, name)
    assert len(in_sql) == 4, "scheduled and retrying, due in the past or without a due time"


def test_the_batched_statements_bind_every_state() -> None:
    """No state is spelled in the SQL text: the states come from the table, as parameters."""
    update, params = batch_sql._update_sql()
    texts = [batch_sql._CLAIM_ONE_PG, batch_sql._CLAIM_MANY_PG, batch_sql._claim_sql("id IN (%s)", ""), update]
    literal = re.compile("'(" + "|".join(Status.values) + ")'")
    for text in texts:
        assert not literal.search(text), text
    assert set(params) == {"cancelled", "completed", "failed", "running"}


# An inline status filter: a queryset filtered or excluded on ``status`` outside the lifecycle's own
# modules, or a hand-written group of states (``in (Status.A, Status.B)``).
INLINE_FILTER = re.compile(r"\.(filter|exclude)\([^)]*\bstatus(__in)?=|\bin \(Status\.\w+, Status\.")
OWN_MODULES = {"jobs/lifecycle.py", "jobs/models.py"}


def test_no_inline_status_filters() -> None:
    found = []
    for package in ("jobs", "workers", "scheduler"):
        for path in sorted((ROOT / package).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if "/migrations/" in name or name in OWN_MODULES:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if INLINE_FILTER.search(line):
                    found.append(f"{name}:{number}: {line.strip()}")
    assert not found, "use JobQuerySet or jobs.lifecycle instead:\n" + "\n".join(found)
