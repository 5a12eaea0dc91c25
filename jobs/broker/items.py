"""What goes into the broker's scripts and what comes out: small typed values, never bare strings.

An action or a kind outside its ``Literal`` is refused when the value is made (``ValueError`` naming
it), before any script could misread it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple, get_args

SettleAction = Literal["ack", "retry", "release"]
RestoreKind = Literal["ready", "delayed", "lease"]


def _check(field: str, value: str, allowed: object) -> None:
    choices = get_args(allowed)
    if value not in choices:
        raise ValueError(f"{field} must be one of {', '.join(choices)}, not {value!r}")


@dataclass(frozen=True)
class PushItem:
    """A job id to put in Redis: ready now (``due_ms`` 0) or delayed until ``due_ms``."""

    queue: str
    job_id: str
    priority: int = 0
    due_ms: int = 0
    lane: str = ""  # its group, and its type when the type has limits (jobs/lanes.py); "" the default lane


@dataclass(frozen=True)
class Settlement:
    """How a finished attempt leaves Redis: ``ack`` (done), ``retry`` at ``due_ms``, or ``release``.

    ``due_ms`` is the retry's due time as the row records it (:func:`jobs.clock.due_score` of its
    ``schedule_at``), so Redis never makes it due before the database does.
    """

    job_id: str
    action: SettleAction
    due_ms: int = 0
    priority: int = 0

    def __post_init__(self) -> None:
        _check("action", self.action, SettleAction)


@dataclass(frozen=True)
class RestoreItem:
    """What the reconciler puts back: ``ready``/``delayed`` with a priority, or a ``lease`` with its owner."""

    job_id: str
    kind: RestoreKind
    priority: int = 0
    worker_id: str = ""
    due_ms: int = 0
    lane: str = ""

    def __post_init__(self) -> None:
        _check("kind", self.kind, RestoreKind)


@dataclass(frozen=True)
class Limit:
    """One scope's limits as the claim script takes them: at most ``concurrency`` running (0: no
    limit), one start per ``interval_ms`` on average with up to ``burst`` at once (0: no rate)."""

    concurrency: int = 0
    interval_ms: float = 0.0
    burst: int = 1

    def args(self) -> tuple[int, str, int]:
        return (self.concurrency, repr(float(self.interval_ms)), self.burst)

    @property
    def is_set(self) -> bool:
        return self.concurrency > 0 or self.interval_ms > 0


@dataclass(frozen=True)
class FlowLimits:
    """The limits a claim applies: the queue's, each group's, and each limited job type's."""

    queue: Limit = Limit()
    group: Limit = Limit()
    types: tuple[tuple[str, Limit], ...] = ()
    weights: tuple[tuple[str, int], ...] = ()  # (group, turns per round); 1 for a group not named

    @property
    def gather_ms(self) -> float:
        """How long a worker held by a rate may wait so that its next claim starts several jobs: half the
        time its burst holds (0 with a burst of one: no start may be lost by waiting)."""
        scopes = (self.queue, self.group, *(limit for _, limit in self.types))
        return max(((s.burst - 1) * s.interval_ms / 2 for s in scopes if s.interval_ms > 0), default=0.0)

    def args(self) -> list[object]:
        out: list[object] = [*self.queue.args(), *self.group.args(), len(self.types)]
        for name, limit in self.types:
            out.extend((name, *limit.args()))
        for group, weight in self.weights:
            out.extend((group, weight))
        return out


NO_LIMITS = FlowLimits()


@dataclass(frozen=True)
class Claim:
    """What ``claim`` leased, when the queue's next delayed job is due (ms, or None), whether it is
    paused, and (a flow queue) each job a limit held back: (limit kind, lane) pairs, for the metrics."""

    ids: list[str]
    next_due_ms: int | None
    paused: bool
    held: tuple[tuple[str, str], ...] = ()


class Promoted(NamedTuple):
    """What ``promote`` moved to ready, and when the next delayed job is due (ms, or None)."""

    ids: list[str]
    next_due_ms: int | None


class ExpiredLease(NamedTuple):
    """A lease ``reclaim`` took back, with the id of the worker that held it."""

    job_id: str
    worker_id: str


@dataclass(frozen=True)
class FlowStats:
    """What ``flow_stats`` read of one queue: its depths, and what flow control holds back now.

    ``waiting`` counts the jobs of every lane (a plain queue's ``ready``); ``in_turn`` those of the
    lanes taking turns; ``parked`` each lane held by a rate with its jobs; ``blocked`` each slot some
    lanes wait for (``g:<group>``, ``t:<type>``) with its lanes and their jobs; ``running`` the live
    leases by lane; ``queue_running`` the jobs holding the queue's concurrency slot; ``queue_tat_ms``
    the queue rate's theoretical arrival time (None: a full bucket). ``cut_short``: more lanes than
    were counted.
    """

    flow: bool
    now_ms: int
    waiting: int
    delayed: int
    leased: int
    paused: bool
    in_turn: int = 0
    lanes: int = 0
    parked: tuple[tuple[str, int], ...] = ()
    blocked: tuple[tuple[str, int, int], ...] = ()
    running: tuple[tuple[str, int], ...] = ()
    queue_running: int = 0
    queue_tat_ms: float | None = None
    cut_short: bool = False
