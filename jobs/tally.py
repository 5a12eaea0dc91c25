"""Completed, failed and their total: the one definition the API, the dashboard and the metrics share.

Every attempt that ends is counted once, by the status the database gave its job:

- **completed**: the job completed;
- **failed**: the attempt failed (an error, a timeout, or lost with its worker), whether the job then
  retries or has failed for good;
- **total**: completed + failed. A failure is never also a completion.

A running job that ends cancelled, and a finish the database rejected because the attempt had been
superseded (counted apart as ``job_queue_stale_writes_total``), are neither.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from jobs.lifecycle import Verb, target

#: The two kinds; also the names of the per-minute counters in Redis.
COMPLETED = "completed"
FAILED = "failed"
# Where an attempt that failed leaves its job: failed for good, or retrying later.
_FAILED_ATTEMPT = (target(Verb.FAIL), target(Verb.BACKOFF))


def kind(status: str | None) -> str | None:
    """How an attempt whose job the database left in ``status`` is counted: completed, failed or not at all."""
    if status == target(Verb.COMPLETE):
        return COMPLETED
    if status in _FAILED_ATTEMPT:
        return FAILED
    return None


@dataclass(frozen=True)
class Tally:
    """Attempts that ended, split into the two kinds that add up to :attr:`total`."""

    completed: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.completed + self.failed

    def per_second(self, seconds: float) -> float:
        return round(self.total / seconds, 3) if seconds else 0.0

    def as_counts(self) -> dict[str, int]:
        """``{"completed": n, "failed": m}``, the shape of the per-minute counters."""
        return {COMPLETED: self.completed, FAILED: self.failed}

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.completed + other.completed, self.failed + other.failed)


def from_total(total: int, failed: int) -> Tally:
    """The tally behind a (total, failed) pair, the shape the Prometheus counters and the heartbeats keep."""
    return Tally(total - failed, failed)


def of_statuses(statuses: Iterable[str | None]) -> Tally:
    """The tally of attempts whose jobs the database left in ``statuses``."""
    kinds = [kind(status) for status in statuses]
    return Tally(kinds.count(COMPLETED), kinds.count(FAILED))
