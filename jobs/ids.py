"""Job ids: the one place that turns text (a URL, a form, Redis, a client's argument) into a job's id.

An id is a UUID of any version: nothing here assumes how ids are made (random today, perhaps
time-ordered later). Text that spells no UUID is not an error here; it names no job, and each caller
says so in its own terms (the API's 404, the dashboard's 400, a worker dropping the entry).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from typing import Any

JobId = uuid.UUID

_HEX_PREFIX = re.compile(r"[0-9a-f]{4,32}")  # as a whole (fullmatch)


def parse_job_id(value: object) -> JobId | None:
    """The id ``value`` spells (a UUID, or its text in any form :class:`uuid.UUID` reads), or None."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def parse_job_ids(values: Iterable[object]) -> list[JobId]:
    """The well-formed ids among ``values``, in order; the others are left out (they name no job)."""
    return [pk for pk in map(parse_job_id, values) if pk is not None]


def id_prefix_range(text: str) -> tuple[JobId, JobId] | None:
    """The smallest and largest id starting with the hex digits of ``text`` (dashes ignored; at least
    4), or None: a search by the first characters of an id, answered from the primary key's index."""
    digits = text.strip().lower().replace("-", "")
    if not _HEX_PREFIX.fullmatch(digits):
        return None
    return uuid.UUID(digits.ljust(32, "0")), uuid.UUID(digits.ljust(32, "f"))


def id_text(job: Any) -> str:
    """A job's id as text (its member in Redis, its log field), made once per instance: a worker needs it
    several times for each job it runs, and turning a UUID into text costs about a microsecond each time."""
    text: str | None = job.__dict__.get("_id_text")
    if text is None:
        text = job.__dict__["_id_text"] = str(job.pk)
    return text
