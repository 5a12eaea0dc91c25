"""Flow control's values: rates (``"100/s"``), concurrency limits, groups and the lane of a job.

The claim script (``jobs/broker/lua/includes/flow_claim.lua``) applies the limits; this module says
what they are. A queue's limits and its groups' are stored on its :class:`~jobs.models.QueueState`
row (defaults from the configuration); a job type's come from its processor
(``@processor(..., rate_limit="10/s", concurrency=5)``). See ``docs/flow-control.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from jobs.broker.items import Limit

MAX_GROUP = 200
MAX_CONCURRENCY = 1_000_000
MAX_BURST = 1_000_000
MAX_WEIGHTED_GROUPS = 1_000
_RATE = re.compile(r"\A([0-9]{1,9})/(s|m|h)\Z")  # as the OpenAPI pattern says (jobs/api/limit_serializers.py)
_PERIOD_SECONDS = {"s": 1, "m": 60, "h": 3600}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class InvalidLimit(ValueError):
    """A limit ZipLine refuses; ``field`` names it (the REST API answers 400 naming it)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class Rate:
    """``count`` starts per ``seconds``."""

    count: int
    seconds: int

    @property
    def interval_ms(self) -> float:
        return self.seconds * 1000 / self.count

    def __str__(self) -> str:
        unit = {1: "s", 60: "m", 3600: "h"}[self.seconds]
        return f"{self.count}/{unit}"


def parse_rate(field: str, value: Any) -> Rate | None:
    """``"100/s"``, ``"1000/m"``, ``"50000/h"`` (or ``""``/None for none); anything else is refused."""
    if value is None or value == "":
        return None
    match = _RATE.match(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidLimit(field, f"{value!r} is not a rate: give N/s, N/m or N/h with N at least 1 (e.g. 100/s)")
    count = int(match.group(1))
    if count < 1:
        raise InvalidLimit(field, f"{value!r}: the count must be at least 1")
    return Rate(count, _PERIOD_SECONDS[match.group(2)])


def parse_concurrency(field: str, value: Any) -> int | None:
    """At least 1 (None: no limit)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENCY:
        raise InvalidLimit(field, f"{value!r} is not a concurrency: give a whole number from 1 to {MAX_CONCURRENCY}")
    return int(value)


def parse_burst(field: str, value: Any) -> int | None:
    """How many may start at once under a rate (None: 1)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_BURST:
        raise InvalidLimit(field, f"{value!r} is not a burst: give a whole number from 1 to {MAX_BURST}")
    return int(value)


MAX_WEIGHT = 1000


def parse_weights(field: str, value: Any) -> dict[str, int]:
    """Groups' turns per round: ``[{"group": "vip", "weight": 3}]`` (whole numbers from 1 to 1000; None or []
    for none). A list of objects, not an object keyed by group, so that OpenAPI 3.0 can say what a name is."""
    if value is None:
        return {}
    if not isinstance(value, list) or len(value) > MAX_WEIGHTED_GROUPS:
        raise InvalidLimit(field, f'must be a list of at most {MAX_WEIGHTED_GROUPS} {{"group": ..., "weight": ...}}')
    weights: dict[str, int] = {}
    for index, item in enumerate(value):
        where = f"{field}[{index}]"
        if not isinstance(item, dict) or set(item) != {"group", "weight"}:
            raise InvalidLimit(where, 'must be {"group": name, "weight": 1 to 1000}')
        group, weight = item["group"], item["weight"]
        if not isinstance(group, str) or not group or len(group) > MAX_GROUP or _CONTROL.search(group):
            raise InvalidLimit(
                f"{where}.group", f"{group!r} is not a group name (1 to {MAX_GROUP} characters, no control ones)"
            )
        if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= MAX_WEIGHT:
            raise InvalidLimit(
                f"{where}.weight", f"{weight!r} is not a weight: give a whole number from 1 to {MAX_WEIGHT}"
            )
        weights[group] = weight
    return weights


def weights_list(weights: dict[str, int] | tuple[tuple[str, int], ...]) -> list[dict[str, Any]]:
    """The API's form of groups' weights, by group name."""
    pairs = weights.items() if isinstance(weights, dict) else weights
    return [{"group": group, "weight": weight} for group, weight in sorted(pairs)]


def check_group(value: Any) -> str:
    """A job's group: text of at most 200 characters without control characters ("" for none)."""
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_GROUP:
        raise InvalidLimit("group", f"must be a string of at most {MAX_GROUP} characters")
    if _CONTROL.search(value):
        raise InvalidLimit("group", "holds a control character")
    return value


#: An unset burst lets a rate start at once what it allows in this long (at least one job): a worker's
#: claims come a few milliseconds apart, so with a burst of one a fast rate (1000/s: one job a
#: millisecond) would lose the turns that fall between two claims.
DEFAULT_BURST_MS = 10


def effective_burst(rate: Rate | None, burst: int | None) -> int:
    """The burst in force: the one set, else (None or 0) what ``rate`` allows in :data:`DEFAULT_BURST_MS`,
    at least 1."""
    if burst:
        return burst
    if rate is None:
        return 1
    return max(1, int(DEFAULT_BURST_MS // rate.interval_ms))


def limit(concurrency: int | None, rate: Rate | None, burst: int | None) -> Limit:
    """The claim script's form of one scope's limits."""
    return Limit(concurrency or 0, rate.interval_ms if rate else 0.0, effective_burst(rate, burst))


@dataclass(frozen=True)
class TypeLimits:
    """A processor's limits (``@processor(rate_limit=..., rate_burst=..., concurrency=...)``)."""

    concurrency: int | None = None
    rate: Rate | None = None
    burst: int | None = None

    @classmethod
    def parse(cls, rate_limit: Any = None, rate_burst: Any = None, concurrency: Any = None) -> TypeLimits:
        return cls(
            parse_concurrency("concurrency", concurrency),
            parse_rate("rate_limit", rate_limit),
            parse_burst("rate_burst", rate_burst),
        )

    @property
    def is_set(self) -> bool:
        return self.concurrency is not None or self.rate is not None

    def as_limit(self) -> Limit:
        return limit(self.concurrency, self.rate, self.burst)


def type_limits(job_type: str) -> TypeLimits | None:
    """The limits of ``job_type``'s processor, or None (also for an unknown type)."""
    from jobs.registry import registry

    if job_type not in registry:
        return None
    found = getattr(registry.get(job_type), "limits", None)
    return found if isinstance(found, TypeLimits) and found.is_set else None


def every_type_limit() -> tuple[tuple[str, Limit], ...]:
    """Every registered type's limits, for the claim script."""
    from jobs.registry import registry

    found = ((name, type_limits(name)) for name in registry.types())
    return tuple((name, limits.as_limit()) for name, limits in found if limits is not None)


def lane(job_type: str, group: str) -> str:
    """The lane a job waits in: its group, and its type when the type has limits ("" the default lane).

    The group comes last, after a newline (a group holds no control character), as
    ``includes/lanes.lua`` reads it.
    """
    if type_limits(job_type) is not None:
        return f"{job_type}\n{group}"
    return group


def lane_parts(lane_name: str) -> tuple[str, str]:
    """A lane's group and type ("" for none), as :func:`lane` joined them."""
    job_type, _, group = lane_name.rpartition("\n")
    return group, job_type
