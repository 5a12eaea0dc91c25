"""Actions on many jobs (the admin's and the dashboard's bulk actions): one transition per job, so
each is the same change as on one job, and a job whose state does not allow it is refused, not an error."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from jobs.ids import JobId
from jobs.models import Job
from jobs.service.actions import JOB_ACTIONS
from jobs.service.errors import TransitionError


@dataclass
class BulkOutcome:
    """The jobs changed, and the ids refused with why: their status, or ``deleted``."""

    changed: list[Job] = field(default_factory=list)
    refused: list[tuple[JobId, str]] = field(default_factory=list)


def apply_each(action: str, ids: Iterable[JobId], outcome: BulkOutcome | None = None) -> BulkOutcome:
    """Apply ``action`` (a name of :data:`JOB_ACTIONS`) to each id, adding to ``outcome`` (or a new one)."""
    change = JOB_ACTIONS[action]
    outcome = BulkOutcome() if outcome is None else outcome
    for pk in ids:
        try:
            outcome.changed.append(change(pk))
        except TransitionError as exc:
            outcome.refused.append((pk, str(exc.current)))
        except Job.DoesNotExist:
            outcome.refused.append((pk, "deleted"))
    return outcome
