"""The Sidekiq-style views of the dashboard: Retries, Scheduled and Dead, and their bulk actions.

Each set is the jobs in one state, in the order an operator reads them (the next due first, or the
latest death first). Pages are keyset-paginated on ``(order field, id)`` through the partial indexes
on ``schedule_at`` and ``completed_at``: page 1,000 costs what page 1 costs, and rows added meanwhile
never shift a page. Bulk actions go through :mod:`jobs.service` one job at a time, so each is a
state-machine transition that also updates Redis; a job that left the set meanwhile is left alone
and counted as skipped.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_datetime

from jobs import service
from jobs.dashboard import formats
from jobs.dashboard.formats import plural
from jobs.ids import parse_job_id
from jobs.models import Job, Status

PAGE_SIZE = 50
#: Jobs read per database round of a bulk action.
CHUNK = 500
#: Jobs one confirmation changes at most (each is a transition, a few ms): a request stays short, and
#: the report says how many are left for the next confirmation.
BULK_LIMIT = 1000


class BadInput(ValueError):
    """A request parameter that is not what the page sends; the view answers 400 naming it."""

    def __init__(self, field: str, value: str, why: str) -> None:
        self.field, self.value = field, value
        super().__init__(f"{field}: {value[:100]!r} {why}")


@dataclass(frozen=True)
class Action:
    name: str
    label: str  # on the button
    verb: str  # in the confirmation and the report: "Retry 3 jobs?", "Retried 3 jobs."
    done: str


RETRY = Action("retry", "Retry", "retry", "Retried")
RUN_NOW = Action("run-now", "Retry now", "run now", "Made due now:")
RUN_SCHEDULED = Action("run-now", "Run now", "run now", "Made due now:")
CANCEL = Action("cancel", "Cancel", "cancel", "Cancelled")
DELETE = Action("delete", "Delete", "delete", "Deleted")


@dataclass(frozen=True)
class JobSet:
    slug: str
    title: str
    status: Status
    noun: str  # "3 dead jobs", "3 retrying jobs"
    order_field: str
    newest_first: bool
    when_label: str
    actions: tuple[Action, ...]
    about: str

    def action(self, name: str) -> Action:
        for action in self.actions:
            if action.name == name:
                return action
        names = ", ".join(a.name for a in self.actions)
        raise BadInput("action", name, f"is not an action of {self.title} (one of {names})")

    def jobs(self, queue: str = "") -> QuerySet[Job]:
        found = Job.objects.in_state(self.status)
        return found.filter(queue=queue) if queue else found


SETS: dict[str, JobSet] = {
    s.slug: s
    for s in (
        JobSet(
            "retries",
            "Retries",
            Status.RETRYING,
            "retrying",
            "schedule_at",
            False,
            "Next retry",
            (RUN_NOW, CANCEL, DELETE),
            "Jobs whose last attempt failed and whose next attempt is due later, the soonest first.",
        ),
        JobSet(
            "scheduled",
            "Scheduled",
            Status.SCHEDULED,
            "scheduled",
            "schedule_at",
            False,
            "Due",
            (RUN_SCHEDULED, CANCEL, DELETE),
            "Jobs submitted with a delay or a time to run at, the soonest first.",
        ),
        JobSet(
            "dead",
            "Dead",
            Status.FAILED,
            "dead",
            "completed_at",
            True,
            "Failed",
            (RETRY, DELETE),
            "Failed jobs: their retries are used up or the error was permanent. The latest first.",
        ),
    )
}


def check_queue(queue: str) -> str:
    """``queue`` itself when it could name a queue, or blank for every queue."""
    if not queue:
        return ""
    try:
        return service.check_queue_name(queue)
    except service.InvalidJob as exc:
        raise BadInput("queue", queue, "is not a queue name") from exc


# -- pages --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    rows: list[Job]
    next_cursor: str | None


def encode_cursor(moment: datetime, pk: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{moment.isoformat()}|{pk}".encode()).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[datetime, uuid.UUID]:
    try:
        when, text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().split("|")
        moment = parse_datetime(when)
        pk = parse_job_id(text)
        if moment is None or moment.tzinfo is None or pk is None:
            raise ValueError(when)
        return moment.astimezone(UTC), pk
    except (ValueError, OverflowError, binascii.Error, UnicodeError):
        raise BadInput("cursor", token, "is not a cursor of this page") from None


def page(job_set: JobSet, queue: str = "", cursor: str = "", size: int = PAGE_SIZE) -> Page:
    """One page of the set (of one queue, or all), from ``cursor`` (blank: the first page)."""
    field = job_set.order_field
    rows = job_set.jobs(queue).defer("payload", "result", "traceback")
    if job_set.newest_first:
        rows = rows.order_by(f"-{field}", "-id")
    else:
        rows = rows.order_by(field, "id")
    if cursor:
        at, pk = decode_cursor(cursor)
        after = "lt" if job_set.newest_first else "gt"
        rows = rows.filter(Q(**{f"{field}__{after}": at}) | Q(**{field: at, f"id__{after}": pk}))
    found = list(rows[: size + 1])
    shown = found[:size]
    for job in shown:
        job.error_line = formats.first_line(job.error)  # type: ignore[attr-defined]
    more = len(found) > size
    last = shown[-1] if shown else None
    token = encode_cursor(getattr(last, field), last.pk) if more and last is not None else None
    return Page(shown, token)


# -- bulk actions -------------------------------------------------------------------------------------


def parse_ids(values: Iterable[str]) -> list[uuid.UUID]:
    """The posted ids; one that spells no job id is a BadInput naming it."""
    ids = []
    for value in values:
        pk = parse_job_id(value)
        if pk is None:
            raise BadInput("id", value, "is not a job id")
        ids.append(pk)
    return ids


@dataclass(frozen=True)
class Selection:
    """The jobs a bulk action is about: the chosen ids, or every job of the set (in one queue or all)
    that was in it at ``as_of`` (jobs that arrive after the operator confirmed are not touched)."""

    job_set: JobSet
    ids: tuple[uuid.UUID, ...] = ()
    every: bool = False
    queue: str = ""
    as_of: datetime | None = None

    def jobs(self) -> QuerySet[Job]:
        found = self.job_set.jobs(self.queue)
        if not self.every:
            return found.filter(pk__in=self.ids)
        return found.filter(updated_at__lte=self.as_of) if self.as_of else found

    def count(self) -> int:
        return self.jobs().count()

    def describe(self) -> str:
        """``dead jobs of queue emails`` or ``selected retries``: the words of a confirmation."""
        what = f"{self.job_set.noun} jobs"
        if not self.every:
            return f"selected {what}"
        return f"{what} of queue {self.queue}" if self.queue else f"{what} of every queue"


def selection_from(job_set: JobSet, form: Any) -> Selection:
    """The selection a bulk form posts (``scope``, ``id``…, ``queue``, ``as_of``); BadInput names a bad field."""
    scope = form.get("scope", "")
    queue = check_queue(form.get("queue", "").strip())
    if scope == "selected":
        return Selection(job_set, ids=tuple(parse_ids(form.getlist("id"))), queue=queue)
    if scope != "all":
        raise BadInput("scope", scope, "is not one of selected, all")
    as_of = form.get("as_of", "")
    moment = parse_datetime(as_of) if as_of else None
    if as_of and (moment is None or moment.tzinfo is None):
        raise BadInput("as_of", as_of, "is not a time with a zone")
    return Selection(job_set, every=True, queue=queue, as_of=moment)


@dataclass(frozen=True)
class Outcome:
    changed: list[Job]
    skipped: int
    remaining: int = 0  # still in the selection: past BULK_LIMIT, for the next confirmation

    def report(self, action: Action, job_set: JobSet) -> str:
        """``Retried 3 jobs. 1 job had left Dead and was left alone.``: what the operator is told."""
        words = [f"{action.done} {plural(len(self.changed))}."]
        if self.skipped:
            was = "was" if self.skipped == 1 else "were"
            words.append(f"{plural(self.skipped)} had left {job_set.title} and {was} left alone.")
        if self.remaining:
            words.append(f"{plural(self.remaining)} more to {action.verb}: confirm again to go on.")
        return " ".join(words)


def _chunks(selection: Selection, limit: int) -> Iterator[list[uuid.UUID]]:
    """Up to ``limit`` of the selection's ids, a chunk at a time, read afresh each time (changed jobs
    leave the set)."""
    last: uuid.UUID | None = None
    while limit > 0:
        ids = selection.jobs().order_by("id").values_list("id", flat=True)
        if last is not None:
            ids = ids.filter(id__gt=last)
        chunk = list(ids[: min(CHUNK, limit)])
        if not chunk:
            return
        yield chunk
        last = chunk[-1]
        limit -= len(chunk)


def apply(action: Action, selection: Selection, limit: int | None = None) -> Outcome:
    """Carry out ``action`` on at most ``limit`` (:data:`BULK_LIMIT`) jobs of the selection: the jobs
    changed, how many were left alone (they had left the set), and how many remain for another round."""
    limit = BULK_LIMIT if limit is None else limit
    changed: list[Job] = []
    for chunk in _chunks(selection, limit):
        if action is DELETE:
            changed += service.delete_jobs(selection.jobs().filter(pk__in=chunk))
        else:
            changed += service.apply_each(action.name, chunk).changed  # a refused one left the set meanwhile
    if not selection.every:
        return Outcome(changed, len(selection.ids) - len(changed))
    return Outcome(changed, 0, selection.count())
