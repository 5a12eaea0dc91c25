"""The one error the broker package raises: Redis could not do what was asked.

Out of reach, timed out, refusing writes (a full Redis under ``noeviction``), failing over: the
callers' answer is the same (back off, answer 503, leave it to the reconciler), so they catch one
:class:`BrokerUnavailable` rather than redis-py's exceptions. The original error is its ``__cause__``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import redis

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

# A cluster client's own errors (no node reachable, a slot no node serves during a failover) are not RedisErrors.
RAISED_BY_REDIS = (redis.RedisError, redis.exceptions.RedisClusterException, OSError)


class BrokerUnavailable(Exception):
    """Redis did not do what was asked; the message is redis-py's, the cause its exception."""


def translated(function: F) -> F:
    """``function`` with redis-py's errors raised as :class:`BrokerUnavailable` (generators too)."""
    if inspect.isgeneratorfunction(function):

        @functools.wraps(function)
        def generator(*args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from function(*args, **kwargs)
            except RAISED_BY_REDIS as exc:
                raise BrokerUnavailable(str(exc) or type(exc).__name__) from exc

        return generator  # type: ignore[return-value]

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except RAISED_BY_REDIS as exc:
            raise BrokerUnavailable(str(exc) or type(exc).__name__) from exc

    return wrapper  # type: ignore[return-value]


def translated_methods(cls: type[T]) -> type[T]:
    """Apply :func:`translated` to every public method of ``cls`` that talks to Redis."""
    for name, member in list(vars(cls).items()):
        if not name.startswith("_") and inspect.isfunction(member):
            setattr(cls, name, translated(member))
    return cls
