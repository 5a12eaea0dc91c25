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

from typing import Any

from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle

from jobs import auth_failures, rate_counter


class ScopedThrottle(ScopedRateThrottle):
    _wait: float | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        scopes = getattr(view, "throttle_scopes", None) or {}
        scope = scopes.get(request.method) or getattr(view, "throttle_scope", None)
        free = getattr(view, "throttle_free", None)
        if not scope or (free is not None and free(request)):
            return True
        rates: dict[str, Any] = dict(api_settings.DEFAULT_THROTTLE_RATES or {})
        rate = rates.get(scope)
        if rate is None:
            return True
        self.scope, self.rate = scope, rate
        limit, window = self.parse_rate(rate)
        assert limit is not None and window is not None  # rate is not None
        self.num_requests, self.duration = limit, window
        cost_of = getattr(view, "throttle_cost", None)
        cost = max(1, int(cost_of(request))) if cost_of is not None else 1
        cost = min(cost, limit)  # a batch larger than the budget takes the whole window
        user = request.user
        ident = str(user.pk) if user and user.is_authenticated else auth_failures.client_address(request)
        count = rate_counter.hit(rate_counter.key("throttle", scope, ident), window, limit=limit, cost=cost)
        if count is None or count.added:
            return True
        self._wait = count.retry_after
        return False

    def wait(self) -> float | None:
        return self._wait
