"""``manage.py runworkers``: start the supervisor and its worker processes (logic in :mod:`workers.pool`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from jobs.db_checks import migrations_problem
from jobs.redis_checks import RedisPolicyError, check_eviction_policy
from jobs.redis_client import get_broker
from workers.pool import PoolConfigError, build_options, check_redis, run_pool
from zipline_site.config import parse_setting


def _overriding(attribute: str) -> Callable[[str], Any]:
    """An argparse type that takes what the setting ``attribute`` takes, within its bounds."""

    def parse(value: str) -> Any:
        try:
            return parse_setting(attribute, value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{value!r}: {exc}") from None

    return parse


class Command(BaseCommand):
    help = "Run the worker pool: a supervisor and JQS_WORKER_COUNT worker processes."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--processes", type=_overriding("worker_count"), help="worker processes (default JQS_WORKER_COUNT)"
        )
        parser.add_argument(
            "--concurrency",
            type=_overriding("worker_max_concurrency"),
            help="jobs at once over all processes (default JQS_WORKER_MAX_CONCURRENCY)",
        )
        parser.add_argument(
            "--queues",
            default="default",
            help="strict order 'high,default,low', weights 'high:3,default:1', or '*' for every queue",
        )
        parser.add_argument("--config", help="YAML configuration file (read before the settings)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            pool = build_options(
                processes=options["processes"], concurrency=options["concurrency"], queues=options["queues"]
            )
        except PoolConfigError as exc:
            raise CommandError(str(exc), returncode=2) from None
        problem = migrations_problem()
        if problem:
            raise CommandError(problem, returncode=2)
        problem = check_redis()
        if problem:
            raise CommandError(problem, returncode=1)
        try:
            check_eviction_policy(get_broker().client)
        except RedisPolicyError as exc:
            raise CommandError(str(exc), returncode=2) from None
        sys.exit(run_pool(pool))
