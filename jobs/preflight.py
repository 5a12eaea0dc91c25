"""The one pre-flight of the long-running commands (``runworkers``, ``runscheduler``): database, migrations, Redis.

What would fail on every step stops the command before it starts, in one line and with a named exit status
(:class:`~zipline_site.exit_codes.ExitCode`): missing migrations, a Redis that refuses ZipLine or may evict
its keys in strict mode are ``CONFIG``; a Redis that does not answer is ``UNAVAILABLE`` for a command that
does not wait for it. A database out of reach passes: the services ride out an outage.
"""

from __future__ import annotations

from django.core.management.base import CommandError

from jobs.broker import Broker
from jobs.broker.checks import RedisPolicyError, check_eviction_policy, refusal, unreachable
from jobs.db_checks import migrations_problem
from zipline_site.exit_codes import ExitCode


def preflight(broker: Broker, url: str, *, require_noeviction: bool, wait_for_redis: bool) -> None:
    """Raise a one-line ``CommandError`` with the exit status that names the problem; return when all is well.

    ``wait_for_redis``: a Redis that does not answer is let through (the command waits for it) instead of
    stopping the command with ``UNAVAILABLE``.
    """
    problem = migrations_problem() or refusal(broker, url)
    if problem:
        raise CommandError(problem, returncode=ExitCode.CONFIG)
    problem = None if wait_for_redis else unreachable(broker, url)
    if problem:
        raise CommandError(problem, returncode=ExitCode.UNAVAILABLE)
    try:
        check_eviction_policy(broker, require_noeviction=require_noeviction)
    except RedisPolicyError as exc:
        raise CommandError(str(exc), returncode=ExitCode.CONFIG) from None
