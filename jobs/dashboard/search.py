"""Finding jobs by id or name, shared by the dashboard and the admin.

An id, or the first characters of one (as the lists show them), becomes a range on the primary key,
so it is answered from the index even in a table of millions; a UUID cast to text would read them all.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from jobs.ids import id_prefix_range, parse_job_id
from jobs.models import Job
from jobs.validation import storable


def matching(term: str) -> Q | None:
    """A filter for jobs whose id is or starts with ``term``, or whose name contains it; None for blank."""
    term = term.strip()
    if not term:
        return None
    exact = parse_job_id(term)
    if exact is not None:
        return Q(pk=exact)
    condition = Q(name__icontains=term)
    bounds = id_prefix_range(term)
    if bounds is not None:
        condition |= Q(pk__gte=bounds[0], pk__lte=bounds[1])
    return condition


def search(queryset: QuerySet[Job], term: str) -> QuerySet[Job]:
    """``queryset`` narrowed to the jobs matching ``term`` (unchanged for a blank term)."""
    if not storable(term):
        return queryset.none()  # no stored name holds a NUL or a lone surrogate, and PostgreSQL refuses both
    condition = matching(term)
    return queryset if condition is None else queryset.filter(condition)
