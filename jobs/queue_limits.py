"""A queue's limits and its groups': stored on its ``QueueState`` row, defaults from the configuration.

Workers read them here (:class:`LimitBook`, at most a second old) and pass them to every claim, so a
change made through the API reaches every worker within a second without a restart, and a Redis that
lost its data cannot lose them. ``PATCH /api/v1/queues/{name}`` calls :func:`update`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction

from jobs.broker.items import NO_LIMITS, FlowLimits
from jobs.limits import (
    InvalidLimit,
    Rate,
    effective_burst,
    every_type_limit,
    limit,
    parse_burst,
    parse_concurrency,
    parse_rate,
    parse_weights,
    weights_list,
)
from jobs.models import QueueState

REFRESH_SECONDS = 1.0
# PATCH fields: the row's column, and the parser that checks a value.
FIELDS = {
    "concurrency": parse_concurrency,
    "rate_limit": parse_rate,
    "rate_burst": parse_burst,
    "group_concurrency": parse_concurrency,
    "group_rate_limit": parse_rate,
    "group_rate_burst": parse_burst,
    "group_weights": parse_weights,
}


@dataclass(frozen=True)
class QueueLimits:
    """One queue's limits in force: its row's, else the configuration's defaults (None: no limit)."""

    concurrency: int | None = None
    rate: Rate | None = None
    burst: int | None = None
    group_concurrency: int | None = None
    group_rate: Rate | None = None
    group_burst: int | None = None
    group_weights: tuple[tuple[str, int], ...] = ()

    def flow(self, types: tuple[tuple[str, Any], ...] = ()) -> FlowLimits:
        """The claim script's form, with the job types' limits."""
        queue = limit(self.concurrency, self.rate, self.burst)
        group = limit(self.group_concurrency, self.group_rate, self.group_burst)
        if not (queue.is_set or group.is_set or self.group_weights or types):
            return NO_LIMITS
        # Type limits alone keep a queue on the fast path: they matter where a type lane made it a flow queue.
        return FlowLimits(queue, group, types, self.group_weights)

    @property
    def is_set(self) -> bool:
        limits = (self.concurrency, self.rate, self.group_concurrency, self.group_rate)
        return any(v is not None for v in limits) or bool(self.group_weights)

    def as_dict(self) -> dict[str, Any]:
        """As the API shows them (null: no limit)."""
        return {
            "concurrency": self.concurrency,
            "rate_limit": str(self.rate) if self.rate else None,
            "rate_burst": effective_burst(self.rate, self.burst),
            "group_concurrency": self.group_concurrency,
            "group_rate_limit": str(self.group_rate) if self.group_rate else None,
            "group_rate_burst": effective_burst(self.group_rate, self.group_burst),
            "group_weights": weights_list(self.group_weights),
        }


def _or_default(own: Any, default: Any) -> Any:
    return default if own in (None, "") else own


def resolve(row: QueueState | None) -> QueueLimits:
    """The limits in force for a queue whose row is ``row`` (None: no row yet)."""
    d = settings.ZIPLINE.limits
    get = (lambda name: getattr(row, name)) if row is not None else (lambda name: None)
    return QueueLimits(
        concurrency=_or_default(get("concurrency"), d.queue_concurrency) or None,
        rate=parse_rate("rate_limit", _or_default(get("rate_limit"), d.queue_rate)),
        burst=_or_default(get("rate_burst"), d.queue_burst),
        group_concurrency=_or_default(get("group_concurrency"), d.group_concurrency) or None,
        group_rate=parse_rate("group_rate_limit", _or_default(get("group_rate_limit"), d.group_rate)),
        group_burst=_or_default(get("group_rate_burst"), d.group_burst),
        group_weights=tuple(sorted((get("group_weights") or {}).items())),
    )


def load(names: Iterable[str]) -> dict[str, QueueLimits]:
    """The limits of each queue named, in one query."""
    wanted = list(names)
    rows = {row.name: row for row in QueueState.objects.filter(name__in=wanted)}
    return {name: resolve(rows.get(name)) for name in wanted}


def parse_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """The row's values for ``changes`` (a null or "" resets one to the default); raises
    :class:`InvalidLimit` naming the first bad field. Writes nothing."""
    if not isinstance(changes, Mapping):
        raise InvalidLimit("body", "must be a JSON object of limits")
    values: dict[str, Any] = {}
    for field, value in changes.items():
        parse = FIELDS.get(field)
        if parse is None:
            raise InvalidLimit(field, f"unknown field (limits are {', '.join(FIELDS)})")
        parsed = parse(field, value)
        values[field] = (str(parsed) if parsed else "") if field.endswith("rate_limit") else parsed
    return values


def update(name: str, changes: Mapping[str, Any]) -> QueueLimits:
    """Set some of a queue's limits (a null resets one to the default); raises :class:`InvalidLimit`
    naming the first bad field, and writes nothing then."""
    values = parse_changes(changes)
    with transaction.atomic():
        row, _ = QueueState.objects.select_for_update().get_or_create(name=name)
        for field, value in values.items():
            setattr(row, field, value)
        row.save()
    return resolve(row)


def patch(name: str, changes: Any) -> dict[str, Any]:
    """``PATCH /api/v1/queues/{name}``: set limits, answer with those in force; a bad value is an
    :class:`~jobs.validation.InvalidJob` naming the field (400)."""
    from jobs.validation import InvalidJob

    try:
        return {"name": name, "limits": update(name, changes).as_dict()}
    except InvalidLimit as exc:
        raise InvalidJob(exc.field, exc.message) from None


def state(name: str) -> dict[str, Any]:
    """``GET /api/v1/queues/{name}``: the limits in force, and what they hold back now (Redis)."""
    from jobs.broker import get_broker
    from jobs.flow_report import report

    [limits] = load([name]).values()
    return {"name": name, "limits": limits.as_dict(), "flow": report(limits, get_broker().flow_stats([name])[name])}


class LimitBook:
    """A worker's copy of its queues' limits, read again from the database every second."""

    def __init__(self, refresh_seconds: float = REFRESH_SECONDS) -> None:
        self.refresh_seconds = refresh_seconds
        self._limits: dict[str, FlowLimits] = {}
        self._read_at = -refresh_seconds

    def for_queues(self, names: Iterable[str]) -> dict[str, FlowLimits]:
        """The limits of ``names``; a database error propagates (no claim goes out unchecked)."""
        wanted = set(names)
        now = time.monotonic()
        stale = now - self._read_at >= self.refresh_seconds
        missing = wanted - self._limits.keys()
        if stale or missing:
            types = every_type_limit()
            fresh = load((self._limits.keys() | wanted) if stale else missing)
            self._limits.update({name: limits.flow(types) for name, limits in fresh.items()})
            if stale:
                self._read_at = now
        return self._limits

    def get(self, name: str) -> FlowLimits:
        return self.for_queues([name])[name]
