"""The job state machine: the only module that writes ``Job.status``.

Every change is the conditional UPDATE of a verb of :mod:`jobs.lifecycle` (:func:`transition`),
keyed on the verb's source states, and a running job's terminal write is also keyed on its attempt
number and worker (``status='running' AND attempts=N AND worker=W``): a late or duplicate
recorder matches no row and is rejected, so one attempt ends in exactly one state. The worker's
hot paths (claiming and finishing many jobs) are batched into one statement each; see
:mod:`jobs.batch_sql`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from jobs import batch_sql, batches, endings, lifecycle, prepared, release_sql
from jobs.ids import parse_job_id, parse_job_ids
from jobs.lifecycle import Verb
from jobs.models import FINISHED, Job, JobQuerySet, Outcome, Status
from jobs.retry_policy import RetryPolicy

# Every state and the states it can reach (derived from the verbs' table).
TRANSITIONS: dict[str, frozenset[str]] = lifecycle.transitions()

MAX_ERROR_CHARS = 64 * 1024
EXPIRED_REASON = "expired: not started before its expires_at"


class TransitionError(Exception):
    """The job's current state does not allow the change asked for (the API answers 409)."""

    def __init__(self, job_id: Any, current: str, wanted: str, message: str = "") -> None:
        self.job_id, self.current, self.wanted = job_id, current, wanted
        super().__init__(message or f"job {job_id} is {current}; it cannot be {wanted}")


def allowed(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


def truncate_text(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """Error text as PostgreSQL can store it: at most ``limit`` characters, and no NUL character
    (which a text column refuses, whatever a failing job put in its exception)."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n... [truncated {len(text) - limit} characters]"


def policy_of(job: Job) -> RetryPolicy:
    return RetryPolicy(job.max_retries, job.backoff, job.initial_delay, job.max_delay, job.jitter)


# -- operator and client actions (one job at a time) ---------------------------------------------


def transition(verb: Verb, rows: JobQuerySet, **fields: Any) -> int:
    """Apply ``verb`` to those of ``rows`` in one of its source states, in one conditional UPDATE;
    returns how many changed. ``fields`` are the other columns the verb writes."""
    move = lifecycle.MOVES[verb]
    if move.target is not None:
        fields["status"] = move.target
    return rows.in_state(*move.sources).update(**fields)


def _load(job_id: Any) -> Job:
    return Job.objects.get(pk=job_id)


def cancel(job_id: Any) -> tuple[Job, bool]:
    """Cancel a waiting job, or ask a running one to stop. Returns (job, removed_from_queue).

    Raises :class:`TransitionError` for a finished job.
    """
    now = timezone.now()
    one = Job.objects.filter(pk=job_id)
    with transaction.atomic():
        if transition(Verb.CANCEL, one, completed_at=now, updated_at=now, schedule_at=None):
            job = _load(job_id)
            endings.after_jobs_ended([job.pk])
            return job, True
    if transition(Verb.REQUEST_CANCEL, one, cancel_requested=True, updated_at=now):
        return _load(job_id), False
    job = _load(job_id)
    raise TransitionError(
        job.pk,
        job.status,
        Status.CANCELLED,
        f"job {job.pk} is {job.status}; only a waiting or running job can be cancelled",
    )


def retry(job_id: Any) -> Job:
    """Run a failed or cancelled job again, with a fresh retry budget.

    Its attempts count from 0 again for the budget, but the next one is numbered after every earlier
    one (``earlier_attempts``), and its attempt row says it followed a manual retry.
    """
    now = timezone.now()
    with transaction.atomic():
        job = _retry(job_id, now)
        if job is not None:
            batches.job_retried(job)
            return job
    job = _load(job_id)
    raise TransitionError(
        job.pk,
        job.status,
        "retried",
        f"job {job.pk} is {job.status}; only a failed or cancelled job can be retried",
    )


def _retry(job_id: Any, now: datetime) -> Job | None:
    changed = transition(
        Verb.RETRY,
        Job.objects.filter(pk=job_id),
        earlier_attempts=F("earlier_attempts") + F("attempts"),
        manual_retries=F("manual_retries") + 1,
        attempts=0,
        cancel_requested=False,
        error="",
        traceback="",
        result=None,
        schedule_at=None,
        completed_at=None,
        worker="",
        updated_at=now,
    )
    return _load(job_id) if changed else None


def run_now(job_id: Any) -> Job:
    """Make a scheduled or retrying job due at once."""
    now = timezone.now()
    changed = transition(Verb.RUN_NOW, Job.objects.filter(pk=job_id), schedule_at=None, updated_at=now)
    job = _load(job_id)
    if not changed:
        raise TransitionError(
            job.pk,
            job.status,
            "run now",
            f"job {job.pk} is {job.status}; only a scheduled or retrying job can be run now",
        )
    return job


def unblock_ready(job_ids: Sequence[Any], now: datetime | None = None) -> list[Any]:
    """The verb ``unblock`` (``unblock_later`` for a job whose ``schedule_at`` is ahead) for those of
    ``job_ids`` whose parents have all completed, in one statement (:func:`jobs.release_sql.unblock_ready`);
    returns their ids. The caller holds their rows' locks."""
    return release_sql.unblock_ready(list(job_ids), now or timezone.now())


def mark_promoted(job_ids: Sequence[Any]) -> int:
    """Scheduled or retrying jobs whose due time came and that Redis moved to the ready set.

    Only bookkeeping (a worker may claim a due row directly), so rows another transaction holds are
    skipped, not waited for: a worker claiming or finishing some of them in one multi-row statement
    could be waiting in turn for rows this one has marked, and PostgreSQL would end one of the two
    with a deadlock. A skipped row the worker leaves waiting is marked by the reconciler's next pass.
    """
    if not job_ids:
        return 0
    with transaction.atomic():
        free = Job.objects.order_by().select_for_update(skip_locked=True).filter(pk__in=job_ids).able_to(Verb.PROMOTE)
        return transition(Verb.PROMOTE, Job.objects.filter(pk__in=free.values("pk")), updated_at=timezone.now())


# -- the worker's hot paths (many jobs per statement) -----------------------------------------------


def claim(job_ids: Sequence[str], worker: str, now: datetime | None = None) -> list[Job]:
    """Mark claimed jobs running (attempt + 1) in one statement; returns the rows that were runnable.

    Ids whose rows are gone or no longer waiting (cancelled while queued) are left out: the worker
    must not run them. So are rows whose ``expires_at`` passed, which end ``expired`` here: the
    claim is where a job would start, so it is where expiry is enforced.
    """
    valid = parse_job_ids(job_ids)
    if not valid:
        return []
    now = now or timezone.now()
    jobs = batch_sql.claim_rows(valid, worker, now)
    if len(jobs) < len(valid):  # rare: only then is a second statement paid for
        got = {job.pk for job in jobs}
        expire(Job.objects.filter(pk__in=[pk for pk in valid if pk not in got]), now)
    return jobs


def expire(rows: JobQuerySet, now: datetime) -> int:
    """End those of ``rows`` that are waiting and whose ``expires_at`` has passed as ``expired``, with
    the reason in their error; returns how many."""
    with transaction.atomic():
        due = rows.filter(expires_at__lte=now).able_to(Verb.EXPIRE).select_for_update().order_by()
        ids = list(due.values_list("pk", flat=True))  # locked: exactly these change below
        if not ids:
            return 0
        expired = transition(
            Verb.EXPIRE,
            Job.objects.filter(pk__in=ids),
            error=EXPIRED_REASON,
            completed_at=now,
            updated_at=now,
            schedule_at=None,
        )
        endings.after_jobs_ended(ids)
    return expired


@dataclass
class AttemptResult:
    """How one attempt ended, as the worker saw it."""

    job: Job
    outcome: str  # an Outcome value
    started_at: datetime
    finished_at: datetime
    duration: float
    result: Any = None
    error: str = ""
    traceback: str = ""
    permanent: bool = False  # no retry, whatever the policy says


@dataclass(frozen=True)
class Recorded:
    """What the database made of an attempt: the job's new status, or None when the write was stale."""

    job: Job
    status: str | None
    due: datetime | None


def ending(job: Job, outcome: str, permanent: bool) -> Verb:
    """The verb (one of :data:`jobs.lifecycle.ENDINGS`) by which an attempt's outcome ends it."""
    if outcome == Outcome.COMPLETED:
        return Verb.COMPLETE
    if outcome == Outcome.CANCELLED:
        return Verb.STOP
    if permanent or not policy_of(job).allows_another(job.attempts):
        return Verb.FAIL
    return Verb.BACKOFF


def next_status(job: Job, outcome: str, permanent: bool, now: datetime) -> tuple[str, datetime | None]:
    """The status an attempt's outcome leads to, with the due time of a retry."""
    verb = ending(job, outcome, permanent)
    due = now + timedelta(seconds=policy_of(job).delay(job.attempts)) if verb == Verb.BACKOFF else None
    return lifecycle.target(verb), due


def record(results: Sequence[AttemptResult]) -> list[Recorded]:
    """Write the outcomes of many attempts: one UPDATE for the jobs and one INSERT for the attempts.

    A job whose cancellation was requested meanwhile ends ``cancelled`` whatever the outcome.
    Stale results (the row moved on: reclaimed, or cancelled) are rejected and get status None.
    """
    if not results:
        return []
    rows = []
    for r in results:
        status, due = next_status(r.job, r.outcome, r.permanent, r.finished_at)
        rows.append(
            batch_sql.FinishRow(
                job_id=r.job.pk,
                attempt=r.job.attempts,
                number=r.job.attempt_number,
                after_manual_retry=r.job.manual_retries > 0 and r.job.attempts == 1,
                worker=r.job.worker,
                status=status,
                result=r.result if status == Status.COMPLETED else None,
                error=truncate_text(r.error),
                traceback=truncate_text(r.traceback),
                schedule_at=due,
                finished_at=r.finished_at,
                started_at=r.started_at,
                outcome=r.outcome,
                duration=r.duration,
            )
        )
    final = prepared.again_if_broken(lambda: _finish(rows))
    return [Recorded(r.job, final.get(r.job.pk), row.schedule_at) for r, row in zip(results, rows, strict=True)]


def _finish(rows: list[batch_sql.FinishRow]) -> dict[Any, str]:
    """The finish statement, and what the endings it made set off (jobs.endings: children released,
    batches counted), in one transaction."""
    with transaction.atomic(durable=False):
        finished = batch_sql.finish_rows(rows)
        ended = [pk for pk, status in finished.final.items() if status in FINISHED]
        endings.after_jobs_ended(ended, None if finished.ties is None else {pk: finished.ties[pk] for pk in ended})
    return finished.final


def release(jobs: Iterable[Job]) -> list[Job]:
    """Hand running jobs back to pending without charging the attempt (shutdown, co-located kill).

    Returns the jobs that were released; a job cancelled meanwhile ends ``cancelled`` instead.
    """
    released = []
    now = timezone.now()
    for job in jobs:
        this_attempt = Job.objects.filter(pk=job.pk, attempts=job.attempts, worker=job.worker)
        with transaction.atomic():
            if transition(Verb.STOP, this_attempt.filter(cancel_requested=True), completed_at=now, updated_at=now):
                endings.after_jobs_ended([job.pk])
                continue
        if transition(
            Verb.RELEASE, this_attempt, attempts=F("attempts") - 1, worker="", started_at=None, updated_at=now
        ):
            released.append(job)
    return released


def record_lost(job_id: str, worker: str, reason: str) -> Recorded | None:
    """A running job whose lease expired: charge the attempt as lost to the worker, then retry or fail.

    Returns None when the row is not running (it finished; the lease was just left behind).
    """
    now = timezone.now()
    pk = parse_job_id(job_id)
    job = Job.objects.filter(pk=pk).running().first() if pk is not None else None
    if job is None or (worker and job.worker and job.worker != worker):
        return None
    started = job.started_at or now
    result = AttemptResult(
        job=job,
        outcome=Outcome.LOST,
        started_at=started,
        finished_at=now,
        duration=max(0.0, (now - started).total_seconds()),
        error=reason,
    )
    return record([result])[0]
