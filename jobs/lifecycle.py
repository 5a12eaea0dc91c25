"""A job's lifecycle as data: every verb, the states it starts from and the state it leads to.

This table is what the code reads: :mod:`jobs.states` writes each change as one conditional UPDATE
keyed on the verb's source states, the batched SQL binds them as parameters, and ``JobQuerySet``
and the operator screens ask it which jobs are waiting, live or finished and what may be done to
one. A new state is an edit to :class:`Status` and to :data:`MOVES`, both here, and a migration.

::

    submit -> pending -claim-> running -complete-> completed
       |         ^                |  error / timeout / worker lost
       |         | promote        +-backoff-> retrying -promote-> pending   (attempts left)
       +-schedule-> scheduled     +-fail-> failed                           (retries used up)
    cancel: pending/scheduled/retrying -> cancelled; running -request_cancel-> (flag) -stop-> cancelled
    retry:  failed/cancelled -> pending;   run_now: scheduled/retrying -> pending
    release: running -> pending (handed back uncharged: shutdown, a co-located hard timeout)
    expire: pending/scheduled/retrying -> expired (its expires_at passed before it started)
    dependencies (docs/workflows.md): submitted with parents not all ended -block-> waiting ("blocked");
      every parent ended -unblock-> pending (-unblock_later-> scheduled while its schedule_at is ahead);
      a parent failed, was cancelled or deleted and the job's on_parent_failure is "cancel"
      -abandon-> cancelled
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from django.db import models


class Status(models.TextChoices):
    PENDING = "pending"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    # Waits for its parents (jobs.endings). Stored and filtered as "waiting", the name, and
    # shown as "blocked": not to be confused with the group WAITING below (pending, scheduled,
    # retrying: jobs Redis holds), which a blocked job is not in: no worker can claim it.
    BLOCKED = "waiting", "Blocked"


# Groups of states, by what a job in them is doing.
WAITING: tuple[Status, ...] = (Status.PENDING, Status.SCHEDULED, Status.RETRYING)
DELAYED: tuple[Status, ...] = (Status.SCHEDULED, Status.RETRYING)  # waiting for a due time
LIVE: tuple[Status, ...] = (*WAITING, Status.RUNNING)
FINISHED: tuple[Status, ...] = (Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.EXPIRED)


class Verb(StrEnum):
    SUBMIT = "submit"
    SCHEDULE = "schedule"  # submitted with a due time in the future
    CLAIM = "claim"
    COMPLETE = "complete"
    BACKOFF = "backoff"  # an attempt failed and the policy allows another, later
    FAIL = "fail"
    STOP = "stop"  # a running job whose cancellation was requested ends
    RELEASE = "release"
    CANCEL = "cancel"
    REQUEST_CANCEL = "request_cancel"  # sets the flag only: the worker stops the job
    RETRY = "retry"
    RUN_NOW = "run_now"
    PROMOTE = "promote"
    EXPIRE = "expire"  # its expires_at passed while it waited: it never runs (jobs.expiry)
    BLOCK = "block"  # submitted with parents that have not all ended (jobs.dependencies)
    UNBLOCK = "unblock"  # its parents all ended (completed, or on_parent_failure "run")
    UNBLOCK_LATER = "unblock_later"  # as unblock, for a job submitted with a due time still ahead
    ABANDON = "abandon"  # a parent failed for good, was cancelled or deleted; on_parent_failure "cancel"


@dataclass(frozen=True)
class Move:
    """Where a verb applies and where it leads (None: the status stays, another column changes)."""

    sources: tuple[Status, ...]
    target: Status | None


MOVES: dict[Verb, Move] = {
    # No source state: these create the row (jobs.insert), they never update one.
    Verb.SUBMIT: Move((), Status.PENDING),
    Verb.SCHEDULE: Move((), Status.SCHEDULED),
    Verb.BLOCK: Move((), Status.BLOCKED),
    # A due scheduled or retrying job may be claimed before its row was marked pending.
    Verb.CLAIM: Move(WAITING, Status.RUNNING),
    Verb.COMPLETE: Move((Status.RUNNING,), Status.COMPLETED),
    Verb.BACKOFF: Move((Status.RUNNING,), Status.RETRYING),
    Verb.FAIL: Move((Status.RUNNING,), Status.FAILED),
    Verb.STOP: Move((Status.RUNNING,), Status.CANCELLED),
    Verb.RELEASE: Move((Status.RUNNING,), Status.PENDING),
    Verb.CANCEL: Move((*WAITING, Status.BLOCKED), Status.CANCELLED),
    Verb.REQUEST_CANCEL: Move((Status.RUNNING,), None),
    Verb.RETRY: Move((Status.FAILED, Status.CANCELLED), Status.PENDING),
    Verb.RUN_NOW: Move(DELAYED, Status.PENDING),
    Verb.PROMOTE: Move(DELAYED, Status.PENDING),
    # Only a job that has not started expires; a running one runs to its end. Not retryable: it would
    # expire again at once.
    Verb.EXPIRE: Move(WAITING, Status.EXPIRED),
    # Only the ending of a parent moves a blocked job on, in that parent's transaction (jobs.endings).
    Verb.UNBLOCK: Move((Status.BLOCKED,), Status.PENDING),
    Verb.UNBLOCK_LATER: Move((Status.BLOCKED,), Status.SCHEDULED),
    Verb.ABANDON: Move((Status.BLOCKED,), Status.CANCELLED),
}

# The verbs by which an attempt that ran ends (the recorder's batched write and a reclaimed lease).
ENDINGS: tuple[Verb, ...] = (Verb.COMPLETE, Verb.BACKOFF, Verb.FAIL, Verb.STOP)


def sources(verb: Verb) -> tuple[Status, ...]:
    """The states ``verb`` may start from."""
    return MOVES[verb].sources


def target(verb: Verb) -> Status:
    """The state ``verb`` leads to; ValueError for a verb that changes no status."""
    move = MOVES[verb].target
    if move is None:
        raise ValueError(f"{verb} changes no status")
    return move


def can(verb: Verb, status: str) -> bool:
    """Whether a job in ``status`` may undergo ``verb``."""
    return status in MOVES[verb].sources


def is_due(status: str, schedule_at: datetime | None, now: datetime) -> bool:
    """Whether a job waits for a due time that has come (``JobQuerySet.due`` in SQL)."""
    return status in DELAYED and (schedule_at is None or schedule_at <= now)


def transitions() -> dict[str, frozenset[str]]:
    """Every state and the states it can reach, as the table implies."""
    return {
        state: frozenset(m.target for m in MOVES.values() if m.target is not None and state in m.sources)
        for state in Status
    }
