"""Rate limits per token user (or client address) and scope; over the limit the API answers 429.

A view names its scope per method (``throttle_scopes = {"POST": "submit"}``); the rate of each scope
is read from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` at request time, and a scope whose rate is
None costs nothing (no Redis round trip). Counters live in the Redis cache; if Redis is down the
cache ignores the error and requests pass.
"""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle, SimpleRateThrottle


class ScopedThrottle(ScopedRateThrottle):
    def allow_request(self, request: Request, view: Any) -> bool:
        scopes = getattr(view, "throttle_scopes", None) or {}
        scope = scopes.get(request.method) or getattr(view, "throttle_scope", None)
        if not scope:
            return True
        rates: dict[str, Any] = dict(api_settings.DEFAULT_THROTTLE_RATES or {})
        rate = rates.get(scope)
        if rate is None:
            return True
        self.scope, self.rate = scope, rate
        self.num_requests, self.duration = self.parse_rate(rate)
        return SimpleRateThrottle.allow_request(self, request, view)
