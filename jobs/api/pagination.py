"""Keyset (cursor) pagination over jobs, newest first: ``ORDER BY created_at DESC, id``.

A cursor is a token holding the (created_at, id) of the row it continues from and a direction;
answers give it bare (``next_cursor``) and as a link (``next``).
Each page is one indexed range query whatever its depth, rows written meanwhile never shift a page, and
rows sharing a ``created_at`` (a batch) are ordered by id so none is skipped or repeated.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Q, QuerySet
from rest_framework.request import Request
from rest_framework.utils.urls import remove_query_param, replace_query_param

from jobs.api.errors import ApiError
from jobs.ids import parse_job_id
from jobs.models import Job

CURSOR_PARAM = "cursor"
# A cursor: its direction (n: next, older; p: previous, newer), the row's created_at as 14 hex digits of
# microseconds since 1970 (up to the year 4253), and its id as 32 hex digits. Every string of this
# form is a cursor, so a client (or a fuzzer) that follows the documented pattern is never refused.
CURSOR_PATTERN = r"^[np][0-9a-f]{46}$"
_CURSOR = re.compile(r"\A([np])([0-9a-f]{14})([0-9a-f]{32})\Z")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Cursor:
    created_at: datetime
    id: uuid.UUID
    backwards: bool = False


def encode_cursor(cursor: Cursor) -> str:
    micros = (cursor.created_at - _EPOCH) // timedelta(microseconds=1)
    return f"{'p' if cursor.backwards else 'n'}{micros:014x}{cursor.id.hex}"


def decode_cursor(token: str) -> Cursor:
    """The cursor in ``token``; a 400 naming the ``cursor`` parameter when it is not one of ours."""
    found = _CURSOR.fullmatch(token)
    pk = parse_job_id(found.group(3)) if found is not None else None
    if found is None or pk is None:
        problem = f"{token[:60]!r} is not a cursor from this API (a page's next_cursor or previous_cursor)"
        raise ApiError(400, "invalid", f"cursor: {problem}", {"cursor": [problem]})
    created = _EPOCH + timedelta(microseconds=int(found.group(2), 16))
    return Cursor(created, pk, found.group(1) == "p")


@dataclass(frozen=True)
class Page:
    """One page of jobs, with the cursors of its neighbours (None at either end) and their links."""

    items: list[Job]
    next_cursor: str | None
    previous_cursor: str | None
    next: str | None
    previous: str | None


def paginate(queryset: QuerySet[Job], request: Request, limit: int, token: str | None) -> Page:
    """One page of ``queryset`` (already filtered) and the cursors of its neighbours, with their links."""
    return _page(request, *page_of(queryset, limit, token))


def page_of(queryset: QuerySet[Job], limit: int, token: str | None) -> tuple[list[Job], str | None, str | None, str]:
    """One page of ``queryset``: its jobs, the next and previous cursors, and, for an empty page past
    either end, which way ("next" or "previous") leads back to the first page. The gRPC API pages with it too."""
    cursor = decode_cursor(token) if token else None
    if cursor is None:
        rows = list(queryset.order_by("-created_at", "id")[: limit + 1])
        items, more = rows[:limit], len(rows) > limit
        return items, _cursor(items[-1], False) if more else None, None, ""
    at, pk = cursor.created_at, cursor.id
    if cursor.backwards:
        before = queryset.filter(Q(created_at__gt=at) | Q(created_at=at, id__lt=pk)).order_by("created_at", "-id")
        rows = list(before[: limit + 1])
        more = len(rows) > limit
        items = list(reversed(rows[:limit]))
        if not items:  # before the first page: the way on is the first page
            return [], None, None, "next"
        return items, _cursor(items[-1], False), _cursor(items[0], True) if more else None, ""
    after = queryset.filter(Q(created_at__lt=at) | Q(created_at=at, id__gt=pk)).order_by("-created_at", "id")
    rows = list(after[: limit + 1])
    items, more = rows[:limit], len(rows) > limit
    if not items:  # past the last page: the way back is the first page
        return [], None, None, "previous"
    return items, _cursor(items[-1], False) if more else None, _cursor(items[0], True), ""


def _cursor(job: Job, backwards: bool) -> str:
    return encode_cursor(Cursor(job.created_at, job.pk, backwards))


def _page(
    request: Request, items: list[Job], next_cursor: str | None, previous_cursor: str | None, to_first_page: str = ""
) -> Page:
    """The page with its links; an empty page past either end links to the first page (which has no cursor)."""
    url = request.build_absolute_uri()
    links = {
        "next": replace_query_param(url, CURSOR_PARAM, next_cursor) if next_cursor else None,
        "previous": replace_query_param(url, CURSOR_PARAM, previous_cursor) if previous_cursor else None,
    }
    if to_first_page:
        links[to_first_page] = remove_query_param(url, CURSOR_PARAM)
    return Page(items, next_cursor, previous_cursor, links["next"], links["previous"])
