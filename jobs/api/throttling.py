"""Rate limits per token user (or client address) and scope; over the limit the API answers 429.

A view names its scope per method (``throttle_scopes = {"POST": "submit"}``); the rate of each scope
is read from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` at request time, and a scope whose rate is
None costs nothing (no Redis round trip). A view may say what a request costs (``throttle_cost``: a
batch costs one per job) or that it is free (``throttle_free``: a wait's second look); a request the budget cannot cover is refused whole and costs nothing.

Counters are :mod:`jobs.rate_counter`'s, one Lua call per request: DRF's own throttle reads and
writes a history in the cache without a lock, and concurrent requests got past it. A fixed window
starts at a user's first request; if Redis cannot be reached, requests pass (logged once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle

from jobs import auth_failures, rate_counter

#: The scope whose hit may be made before the token is checked, in the check's own round trip
#: (:mod:`jobs.auth_failures`): a submission needs nothing but a valid token and costs one, so nothing the
#: checks after the token's could refuse has been counted. A token this process remembers names its user
#: ahead of the check; if the check then refuses it (revoked meanwhile, or its address locked out), that
#: one hit stays counted against the user.
EARLY_SCOPE = "submit"


@dataclass(frozen=True)
class Plan:
    """What a request's throttle will count: its scope and rate, the limit over the window, its cost."""

    scope: str
    rate: str
    limit: int
    window: int
    cost: int

    def hit_for(self, ident: str) -> rate_counter.Hit:
        return rate_counter.Hit(
            rate_counter.key("throttle", self.scope, ident), self.cost, self.window * 1000, self.limit
        )


def early_hit(request: Any, view: Any, user: Any) -> rate_counter.Hit | None:
    """The hit a request of :data:`EARLY_SCOPE` will make for ``user``, to be made ahead of its throttle;
    None for any other request."""
    if _scope(request, view) != EARLY_SCOPE:
        return None  # before plan(): another scope's cost may read the body, not the token check's business
    plan = ScopedThrottle().plan(request, view)
    return plan.hit_for(str(user.pk)) if plan is not None else None


def _scope(request: Any, view: Any) -> str | None:
    """The rate scope of ``request``'s method under ``view``."""
    scopes = getattr(view, "throttle_scopes", None) or {}
    scope: str | None = scopes.get(request.method) or getattr(view, "throttle_scope", None)
    return scope


class ScopedThrottle(ScopedRateThrottle):
    _wait: float | None = None

    def plan(self, request: Any, view: Any) -> Plan | None:
        """What ``request`` costs under ``view``'s scope for its method; None when it costs nothing."""
        scope = _scope(request, view)
        free = getattr(view, "throttle_free", None)
        if not scope or (free is not None and free(request)):
            return None
        rates: dict[str, Any] = dict(api_settings.DEFAULT_THROTTLE_RATES or {})
        rate = rates.get(scope)
        if rate is None:
            return None
        limit, window = self.parse_rate(rate)
        assert limit is not None and window is not None  # rate is not None
        cost_of = getattr(view, "throttle_cost", None)
        cost = max(1, int(cost_of(request))) if cost_of is not None else 1
        return Plan(scope, rate, limit, window, min(cost, limit))  # a batch larger than the budget takes it all

    def allow_request(self, request: Request, view: Any) -> bool:
        plan = self.plan(request, view)
        if plan is None:
            return True
        self.scope, self.rate, self.num_requests, self.duration = plan.scope, plan.rate, plan.limit, plan.window
        user = request.user
        ident = str(user.pk) if user and user.is_authenticated else auth_failures.client_address(request)
        hit = plan.hit_for(ident)
        count = rate_counter.take_counted(request, hit.key)
        if count is None:
            count = rate_counter.hit(hit.key, plan.window, limit=plan.limit, cost=plan.cost)
        if count is None or count.added:
            return True
        self._wait = count.retry_after
        return False

    def wait(self) -> float | None:
        return self._wait
