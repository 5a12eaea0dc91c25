"""Failed logins per client address, counted in Redis: past ``JQS_AUTH_FAILURE_LIMIT`` failures within
``JQS_AUTH_FAILURE_WINDOW`` (from the first), every login from that address answers 429 with
``Retry-After`` until the window ends, a right token or password included, so guessing gains nothing.

Both doors count into the same counter: API tokens (:func:`limited`, around the API's authentication)
and the admin's login form (:func:`limited_login`, and Django's ``user_login_failed`` signal). The
address is ``REMOTE_ADDR``, what connected to the server; behind a proxy see docs/security.md.

A window never locks anyone out for longer than itself: failures refused with 429 are not counted.
While Redis is out of reach nothing is counted or refused (see :mod:`jobs.rate_counter`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest, HttpResponse
from rest_framework import exceptions

from jobs import rate_counter
from zipline_site.setting_values import read_once

#: JQS_AUTH_FAILURE_LIMIT, read at every request's token check.
failure_limit = read_once(lambda: int(settings.ZIPLINE.security.auth_failure_limit))

F = TypeVar("F", bound=Callable[..., Any])


def client_address(request: Any) -> str:
    """The address a request came from (``REMOTE_ADDR``; a DRF request's underlying one too)."""
    meta = getattr(request, "META", None) or {}
    return str(meta.get("REMOTE_ADDR") or "unknown")


def _counter(address: str) -> str:
    return rate_counter.key("auth-failures", address)


def blocked_for(address: str) -> int | None:
    """Seconds until ``address`` may log in again, or None when it may now."""
    limit = failure_limit()
    return _wait(rate_counter.peek(_counter(address), at_least=limit), limit)


def _wait(count: rate_counter.Count | None, limit: int) -> int | None:
    if count is None or count.count < limit:
        return None
    return count.retry_after


def record_failure(address: str) -> None:
    """Count one failed login from ``address`` (the window starts with the first)."""
    rate_counter.hit(_counter(address), float(settings.ZIPLINE.security.auth_failure_window))


def _message(seconds: int) -> str:
    return f"too many failed logins from this address; try again in {seconds} seconds"


class TooManyFailures(exceptions.Throttled):
    """429 with our message said once: given ``wait``, DRF's Throttled appends its own "Expected available
    in N seconds." to the message; ``wait`` is still set, for ``Retry-After``."""

    wait: int

    def __init__(self, wait: int) -> None:
        super().__init__(detail=_message(wait))
        self.wait = wait


def limited(authenticate: F) -> F:
    """Wrap a DRF authentication's ``authenticate``: 429 while the address is blocked, and each
    :class:`~rest_framework.exceptions.AuthenticationFailed` counted. Requests without an
    ``Authorization`` header try no credential and cost nothing.

    An authentication that reads a Redis key of its own on every request names it (``read_along()``);
    it is read in the same round trip as the counter and handed over (``took_along(read, value)``,
    ``read`` False when Redis could not be reached) before ``authenticate`` runs. It may also name a rate
    limit's hit to make in that round trip (``hit_along(request)``, see
    :data:`jobs.api.throttling.EARLY_SCOPE`), whose count the throttle then takes instead of counting again."""

    @functools.wraps(authenticate)
    def wrapper(self: Any, request: Any) -> Any:
        if not request.META.get("HTTP_AUTHORIZATION"):
            return authenticate(self, request)
        address = client_address(request)
        read_along = getattr(self, "read_along", None)
        if read_along is None:
            wait = blocked_for(address)
        else:
            limit = failure_limit()
            also = self.hit_along(request) if hasattr(self, "hit_along") else None
            count, value, counted = rate_counter.peek_along(_counter(address), read_along(), limit, also)
            self.took_along(count is not None, value)
            if also is not None and counted is not None:
                rate_counter.keep_counted(request, also, counted)
            wait = _wait(count, limit)
        if wait is not None:
            raise TooManyFailures(wait)
        try:
            return authenticate(self, request)
        except exceptions.AuthenticationFailed:
            record_failure(address)
            raise

    return wrapper  # type: ignore[return-value]


def limited_login(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Wrap a login view: a POST from a blocked address answers 429 without checking the password.
    Failures are counted by :func:`_count_failed_login` (Django's ``user_login_failed``)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method == "POST":
            wait = blocked_for(client_address(request))
            if wait is not None:
                response = HttpResponse(_message(wait) + "\n", status=429, content_type="text/plain; charset=utf-8")
                response["Retry-After"] = str(wait)
                return response
        return view(request, *args, **kwargs)

    return wrapper


def _count_failed_login(sender: Any, credentials: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    if request is not None:
        record_failure(client_address(request))


user_login_failed.connect(_count_failed_login, dispatch_uid="zipline-auth-failures")
