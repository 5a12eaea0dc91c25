"""Finding jobs by id or name, shared by the dashboard and the admin.

An id, or the first characters of one (as the lists show them), becomes a range on the primary key,
so it is answered from the index even in a table of millions; a UUID cast to text would read them all.
"""

from __future__ import annotations

import re
import uuid

from django.db.models import Q, QuerySet

from jobs.models import Job
from jobs.validation import storable

_HEX = re.compile(r"[0-9a-f]{4,32}")  # as a whole (fullmatch)
MIN_PREFIX = 4


def full_id(term: str) -> uuid.UUID | None:
    """The UUID ``term`` spells out completely, or None."""
    try:
        return uuid.UUID(term.strip())
    except ValueError:
        return None


def id_range(term: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The smallest and largest id starting with the hex digits of ``term`` (dashes ignored), or None."""
    digits = term.strip().lower().replace("-", "")
    if not _HEX.fullmatch(digits):
        return None
    return uuid.UUID(digits.ljust(32, "0")), uuid.UUID(digits.ljust(32, "f"))


def matching(term: str) -> Q | None:
    """A filter for jobs whose id is or starts with ``term``, or whose name contains it; None for blank."""
    term = term.strip()
    if not term:
        return None
    exact = full_id(term)
    if exact is not None:
        return Q(pk=exact)
    condition = Q(name__icontains=term)
    bounds = id_range(term)
    if bounds is not None:
        condition |= Q(pk__gte=bounds[0], pk__lte=bounds[1])
    return condition


def search(queryset: QuerySet[Job], term: str) -> QuerySet[Job]:
    """``queryset`` narrowed to the jobs matching ``term`` (unchanged for a blank term)."""
    if not storable(term):
        return queryset.none()  # no stored name holds a NUL or a lone surrogate, and PostgreSQL refuses both
    condition = matching(term)
    return queryset if condition is None else queryset.filter(condition)
