"""One-line errors for the one-shot management commands: a database or Redis out of reach is no bug."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.management.base import CommandError
from django.db import DatabaseError

from jobs.broker import BrokerUnavailable
from zipline_site.exit_codes import ExitCode


def first_line(exc: Exception) -> str:
    """The first line of an error's message (a driver's may run to several)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


@contextmanager
def dependency_errors() -> Iterator[None]:
    """Turn a database or Redis failure inside the block into a ``CommandError`` of one line (exit 3)."""
    try:
        yield
    except DatabaseError as exc:
        raise CommandError(
            f"database error: {first_line(exc)} (is the database up and migrated? manage.py migrate)",
            returncode=ExitCode.UNAVAILABLE,
        ) from None
    except BrokerUnavailable as exc:
        raise CommandError(f"Redis error: {first_line(exc)} (JQS_REDIS_URL)", returncode=ExitCode.UNAVAILABLE) from None
