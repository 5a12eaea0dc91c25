"""Keyset (cursor) pagination over jobs, newest first: ``ORDER BY created_at DESC, id``.

A cursor is an opaque token holding the (created_at, id) of the row it continues from and a direction.
Each page is one indexed range query whatever its depth, rows written meanwhile never shift a page, and
rows sharing a ``created_at`` (a batch) are ordered by id so none is skipped or repeated.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_datetime
from rest_framework.request import Request
from rest_framework.utils.urls import remove_query_param, replace_query_param

from jobs.api.errors import ApiError
from jobs.models import Job

CURSOR_PARAM = "cursor"


@dataclass(frozen=True)
class Cursor:
    created_at: datetime
    id: uuid.UUID
    backwards: bool = False


def encode_cursor(cursor: Cursor) -> str:
    text = f"{'p' if cursor.backwards else 'n'}|{cursor.created_at.isoformat()}|{cursor.id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(token: str) -> Cursor:
    """The cursor in ``token``; a 400 naming the ``cursor`` parameter when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        direction, when, pk = raw.split("|")
        created = parse_datetime(when)
        if direction not in ("n", "p") or created is None or created.tzinfo is None:
            raise ValueError(raw)
        # In UTC, as the cursors this API writes: an offset past +-15:59 (PostgreSQL's limit) or a
        # moment beyond year 9999 there is no cursor of ours.
        return Cursor(created.astimezone(UTC), uuid.UUID(pk), direction == "p")
    except (ValueError, OverflowError, binascii.Error, UnicodeError):
        raise ApiError(400, "invalid", "cursor: not a cursor from this API", {"cursor": ["invalid cursor"]}) from None


@dataclass(frozen=True)
class Page:
    items: list[Job]
    next: str | None
    previous: str | None


def paginate(queryset: QuerySet[Job], request: Request, limit: int, token: str | None) -> Page:
    """One page of ``queryset`` (already filtered) and the links to its neighbours."""
    cursor = decode_cursor(token) if token else None
    if cursor is None:
        rows = list(queryset.order_by("-created_at", "id")[: limit + 1])
        items, more = rows[:limit], len(rows) > limit
        return Page(items, _link(request, items[-1], False) if more else None, None)
    at, pk = cursor.created_at, cursor.id
    if cursor.backwards:
        before = queryset.filter(Q(created_at__gt=at) | Q(created_at=at, id__lt=pk)).order_by("created_at", "-id")
        rows = list(before[: limit + 1])
        more = len(rows) > limit
        items = list(reversed(rows[:limit]))
        if not items:
            return Page([], _first_page(request), None)
        return Page(items, _link(request, items[-1], False), _link(request, items[0], True) if more else None)
    after = queryset.filter(Q(created_at__lt=at) | Q(created_at=at, id__gt=pk)).order_by("-created_at", "id")
    rows = list(after[: limit + 1])
    items, more = rows[:limit], len(rows) > limit
    if not items:
        return Page([], None, _first_page(request))
    return Page(items, _link(request, items[-1], False) if more else None, _link(request, items[0], True))


def _link(request: Request, job: Job, backwards: bool) -> str:
    token = encode_cursor(Cursor(job.created_at, job.pk, backwards))
    return replace_query_param(request.build_absolute_uri(), CURSOR_PARAM, token)


def _first_page(request: Request) -> str:
    return remove_query_param(request.build_absolute_uri(), CURSOR_PARAM)
