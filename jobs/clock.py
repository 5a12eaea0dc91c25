"""The clock the Lua scripts judge lease deadlines and due times by.

Every script that reads the time takes ``now_ms`` as its ``ARGV[1]``. In production it is
:data:`REDIS_TIME` (0): the script reads Redis ``TIME``, one clock for every host, so a worker or
scheduler whose clock is off cannot expire a lease early. A test gives
the broker a clock of its own (``tests.helpers.DrivenClock``) and moves it forward instead of
sleeping.

Due times are instants: a scheduled job's ``schedule_at``, or the ``schedule_at`` a retry's backoff
gave its row, rounded up to the millisecond (:func:`due_score`). Redis holds exactly what the database
records, so the reconciler rebuilds the same scores, and no job is due in Redis before its row says.
"""

from __future__ import annotations

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


class RedisClock:
    """Production: the scripts read Redis ``TIME``; the caller's clock is this host's wall clock."""

    def script_ms(self) -> int:
        return REDIS_TIME


def due_score(when: datetime) -> int:
    """A due time as Redis scores it: milliseconds since the epoch, rounded up.

    The scripts judge due times by the Redis clock in whole milliseconds, rounded down; rounding the
    due time down as well would let a job run up to a millisecond before its ``schedule_at``.
    """
    micros = (when - _EPOCH) // _MICROSECOND
    return -(-micros // 1000)
