"""The one pre-flight of the long-running commands (``runworkers``, ``runscheduler``): database, migrations, Redis.

What would fail on every step stops the command before it starts, in one line and with a named exit status
(:class:`~zipline_site.exit_codes.ExitCode`): missing migrations, a Redis that refuses ZipLine or may evict
its keys in strict mode are ``CONFIG``; a Redis that does not answer is ``UNAVAILABLE`` for a command that
does not wait for it. A database out of reach passes: the services ride out an outage.
"""

from __future__ import annotations

import redis
from django.core.management.base import CommandError

from jobs.broker.checks import RedisPolicyError, check_eviction_policy, refusal, safe_url
from jobs.db_checks import migrations_problem
from zipline_site.exit_codes import ExitCode


def unreachable(client: redis.Redis, url: str) -> str | None:
    """None when Redis answers; otherwise a one-line reason naming where it was looked for (password masked)."""
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"cannot reach Redis at {safe_url(url)}: {exc}"
    return None


def preflight(client: redis.Redis, url: str, *, require_noeviction: bool, wait_for_redis: bool) -> None:
    """Raise a one-line ``CommandError`` with the exit status that names the problem; return when all is well.

    ``wait_for_redis``: a Redis that does not answer is let through (the command waits for it) instead of
    stopping the command with ``UNAVAILABLE``.
    """
    problem = migrations_problem() or refusal(client, url)
    if problem:
        raise CommandError(problem, returncode=ExitCode.CONFIG)
    problem = None if wait_for_redis else unreachable(client, url)
    if problem:
        raise CommandError(problem, returncode=ExitCode.UNAVAILABLE)
    try:
        check_eviction_policy(client, require_noeviction=require_noeviction)
    except RedisPolicyError as exc:
        raise CommandError(str(exc), returncode=ExitCode.CONFIG) from None
