"""The clock the Lua scripts judge lease deadlines and due times by.

Every script that reads the time takes ``now_ms`` as its ``ARGV[1]``. In production it is
:data:`REDIS_TIME` (0): the script reads Redis ``TIME``, one clock for every host, so a worker or
scheduler whose clock is off can neither expire a lease early nor make a job due early. A test gives
the broker a clock of its own (``tests.helpers.DrivenClock``) and moves it forward instead of
sleeping.

A retry is a delay, not an instant: the worker (or the supervisor or reclaimer, for an attempt lost
to its worker) computes its due time on its own clock, and the broker sends the scripts
``due - local_ms()``, which they add to their clock (see :func:`retry_delay`). So the skew between
that host's clock and Redis's cancels out, and a retry waits its backoff on the Redis clock. A
scheduled job's ``schedule_at`` is an instant a client chose: it is sent as it is, and is due when
the Redis clock reaches it (as is a retrying row's ``schedule_at`` when the reconciler rebuilds Redis:
only the row's instant is left by then).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

REDIS_TIME = 0  # ``now_ms`` that tells a script to read Redis TIME

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class Clock(Protocol):
    """Where the scripts' ``now_ms`` and the caller's own reading of the time come from."""

    def script_ms(self) -> int:
        """``now_ms`` for the scripts: :data:`REDIS_TIME`, or the time a test drives."""
        ...

    def local_ms(self) -> int:
        """Now on the caller's clock: the one its retry due times were computed with."""
        ...


class RedisClock:
    """Production: the scripts read Redis ``TIME``; the caller's clock is this host's wall clock."""

    def script_ms(self) -> int:
        return REDIS_TIME

    def local_ms(self) -> int:
        return time.time_ns() // 1_000_000


def due_score(when: datetime) -> int:
    """A due time as Redis scores it: milliseconds since the epoch, rounded up.

    The scripts judge due times by the Redis clock in whole milliseconds, rounded down; rounding the
    due time down as well would let a job run up to a millisecond before its ``schedule_at``.
    """
    micros = (when - _EPOCH) // _MICROSECOND
    return -(-micros // 1000)


def retry_delay(due_ms: int, clock: Clock) -> int:
    """A retry's due time on the caller's clock as a delay from now, never negative."""
    return max(0, due_ms - clock.local_ms())
