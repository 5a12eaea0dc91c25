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

    def __post_init__(self) -> None:
        _check("kind", self.kind, RestoreKind)


@dataclass(frozen=True)
class Claim:
    """What ``claim`` leased, when the queue's next delayed job is due (ms, or None), and whether it is paused."""

    ids: list[str]
    next_due_ms: int | None
    paused: bool


class Promoted(NamedTuple):
    """What ``promote`` moved to ready, and when the next delayed job is due (ms, or None)."""

    ids: list[str]
    next_due_ms: int | None


class ExpiredLease(NamedTuple):
    """A lease ``reclaim`` took back, with the id of the worker that held it."""

    job_id: str
    worker_id: str
