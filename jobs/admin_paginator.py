"""A paginator for admin lists of a very large table: it never counts every row.

``COUNT(*)`` over a million jobs reads the whole table on PostgreSQL, on every page of the admin. An
unfiltered list takes the planner's row estimate from ``pg_class.reltuples`` instead (free, refreshed
by autovacuum); a filtered list counts at most ``CAP`` rows, so a page past the cap is simply not
offered. A small table (or one on another database) is counted the capped way too, which is exact below
the cap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property

if TYPE_CHECKING:  # generic only in django-stubs: Django's Paginator takes no [...] at run time
    _RowsPaginator = Paginator[object]  # any rows: the admin's model instances, or a plain list
else:
    _RowsPaginator = Paginator

#: Below this estimate an exact count is cheap enough (and the estimate least reliable).
EXACT_BELOW = 10_000
#: The most rows a filtered list counts.
CAP = 10_000


def table_estimate(queryset: QuerySet[Any]) -> int | None:
    """The planner's row estimate of the queryset's table on PostgreSQL, else None (or never analysed)."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)", [queryset.model._meta.db_table]
        )
        row = cursor.fetchone()
    if row is None or row[0] is None or row[0] < 0:  # -1: never vacuumed or analysed
        return None
    return int(row[0])


def is_unfiltered(queryset: QuerySet[Any]) -> bool:
    """True when the query reads the whole table: no WHERE, no DISTINCT, no slice."""
    query = queryset.query
    return not query.where and not query.distinct and not query.is_sliced and not query.combinator


def capped_count(queryset: QuerySet[Any], cap: int = CAP) -> int:
    """``min(count, cap)``, reading at most ``cap`` rows (``SELECT COUNT(*) FROM (… LIMIT cap)``)."""
    return queryset.order_by()[:cap].count()


class EstimatedCountPaginator(_RowsPaginator):
    """Django's paginator with a bounded ``count`` (see the module docstring)."""

    cap = CAP
    exact_below = EXACT_BELOW

    @cached_property
    def count(self) -> int:
        object_list = self.object_list
        if not isinstance(object_list, QuerySet):
            return len(object_list)
        if is_unfiltered(object_list):
            estimate = table_estimate(object_list)
            if estimate is not None and estimate >= self.exact_below:
                return estimate
        return capped_count(object_list, self.cap)
