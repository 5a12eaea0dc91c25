"""What every gRPC call goes through before and after its method: the token, the permission, the rate
limit, the database connection and the translation of errors.

The token and the rate limits are the REST API's own code (:class:`jobs.api.auth.BearerTokenAuthentication`,
:class:`jobs.api.throttling.ScopedThrottle`), handed the call as they read a request: its ``authorization``
metadata and its peer's address. So a token is verified, remembered and revoked alike, failed tokens count
towards the same per-address lock-out, and a user's REST and gRPC calls share one budget per scope. The
permissions are :mod:`jobs.roles`' rule, as REST applies it: submitting needs a token only.

As Django does around each request, the thread's database connection is checked before and after each call
(the server's threads are reused), so a connection past ``CONN_MAX_AGE`` or broken is replaced. One thing is
left out for a connection that ended its previous call cleanly less than :data:`TRUSTED_FOR` ago: Django's
health check (``CONN_HEALTH_CHECKS``), a ``SELECT 1`` round trip before the call's first query, which under
load every call would pay for a connection used a moment ago. A connection idle for longer is checked.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from django.contrib.auth.models import AnonymousUser
from django.db import close_old_connections, connections
from rest_framework import exceptions

from jobs.api.auth import BearerTokenAuthentication, api_open
from jobs.api.throttling import ScopedThrottle
from jobs.grpc import errors
from jobs.roles import allows

R = TypeVar("R")
METHOD = "RPC"  # what the throttle reads as the request's method

#: Seconds after a call ended cleanly that its thread's database connection is used without a health check.
TRUSTED_FOR = 1.0
_TRUSTED_UNTIL = "_zipline_grpc_trusted_until"  # kept on Django's (thread-local) connection wrapper


class Action:
    """A method as DRF's throttle reads a view: its rate scope (REST's), and what a call costs."""

    def __init__(self, scope: str, cost: int) -> None:
        self.throttle_scopes = {METHOD: scope}
        self.cost = cost

    def throttle_cost(self, request: object) -> int:
        return self.cost


class CallRequest:
    """A gRPC call as DRF's authentication and throttle read a request."""

    method = METHOD

    def __init__(self, context: Any, action: Action) -> None:
        self.parser_context = {"view": action}  # where DRF's request names its view
        self.META: dict[str, str] = {"REMOTE_ADDR": peer_address(context.peer())}
        for key, value in context.invocation_metadata():
            if key == "authorization":
                self.META["HTTP_AUTHORIZATION"] = value
        self.user: Any = AnonymousUser()


def peer_address(peer: str) -> str:
    """The client's address in a gRPC peer (``ipv4:10.0.0.1:5000``, ``ipv6:[::1]:5000``), as REMOTE_ADDR has it."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]")
    return peer or "unknown"


def admit(context: Any, scope: str, permission: str | None, cost: int = 1) -> Any:
    """The user the call's token names, once it may call this method; else the error REST would raise."""
    action = Action(scope, cost)
    request = CallRequest(context, action)
    found = BearerTokenAuthentication().authenticate(request)  # type: ignore[arg-type]
    if found is not None:
        request.user = found[0]
    elif not api_open():
        raise exceptions.NotAuthenticated()
    if permission and not api_open() and not allows(request.user, permission):
        raise exceptions.PermissionDenied(f"this action needs the {permission} permission")
    throttle = ScopedThrottle()
    if not throttle.allow_request(request, action):  # type: ignore[arg-type]
        raise exceptions.Throttled(throttle.wait())
    return request.user


Unary = Callable[[Any, Any, Any, Any], R]


def _clean(conn: Any) -> bool:
    """The connection is open, and neither Django nor psycopg saw it fail."""
    raw = conn.connection
    return raw is not None and not conn.errors_occurred and not getattr(raw, "broken", False)


def _connections_before_call() -> None:
    """Django's checks before a request (age, errors, autocommit); the health check is skipped for a
    connection that ended its last call cleanly within :data:`TRUSTED_FOR` seconds."""
    now = time.monotonic()
    for conn in connections.all(initialized_only=True):
        trusted = _clean(conn) and now < conn.__dict__.get(_TRUSTED_UNTIL, 0.0)
        conn.close_if_unusable_or_obsolete()
        if trusted and conn.connection is not None:
            conn.health_check_done = True  # type: ignore[attr-defined]  # Django sets it, its stubs omit it


def _connections_after_call() -> None:
    """Django's checks after a request; a connection kept clean is trusted for the next :data:`TRUSTED_FOR` seconds."""
    close_old_connections()
    until = time.monotonic() + TRUSTED_FOR
    for conn in connections.all(initialized_only=True):
        conn.__dict__[_TRUSTED_UNTIL] = until if _clean(conn) else 0.0


@contextmanager
def _guarded(context: Any) -> Iterator[None]:
    """A call's database connections checked before and after it, as Django does around a request, and
    any error it raises turned into its gRPC status (``errors.abort`` raises)."""
    _connections_before_call()
    try:
        yield
    except Exception as exc:
        errors.abort(context, exc)
    finally:
        _connections_after_call()


def unary(
    scope: str, permission: str | None = None, cost: Callable[[Any], int] | None = None
) -> Callable[[Unary[R]], Callable[[Any, Any, Any], R]]:
    """Wrap a unary method ``(self, request, context, user)``: admitted first, any error a gRPC status."""

    def wrap(method: Unary[R]) -> Callable[[Any, Any, Any], R]:
        @functools.wraps(method)
        def call(self: Any, request: Any, context: Any) -> R:
            with _guarded(context):
                user = admit(context, scope, permission, cost(request) if cost else 1)
                return method(self, request, context, user)
            raise AssertionError("unreachable: _guarded aborts the call on an error")

        return call

    return wrap


def stream(
    scope: str, permission: str | None = None
) -> Callable[[Unary[Iterator[R]]], Callable[[Any, Any, Any], Iterator[R]]]:
    """Wrap a server-streaming method as :func:`unary` does; an error ends the stream with its status."""

    def wrap(method: Unary[Iterator[R]]) -> Callable[[Any, Any, Any], Iterator[R]]:
        @functools.wraps(method)
        def call(self: Any, request: Any, context: Any) -> Iterator[R]:
            with _guarded(context):
                user = admit(context, scope, permission)
                yield from method(self, request, context, user)

        return call

    return wrap
