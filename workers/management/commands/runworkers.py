"""``manage.py runworkers``: start the supervisor and its worker processes (logic in :mod:`workers.pool`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from jobs.broker import get_broker
from jobs.preflight import preflight
from workers.pool import PoolConfigError, build_options, run_pool
from zipline_site.config import parse_setting
from zipline_site.exit_codes import ExitCode


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
    # Django's system checks would import the URL map, and with it the API, the admin and the dashboard
    # (apps this command does not install: zipline_site.installed_apps); the pre-flight checks what the
    # workers need, and migrate and the API's processes run the system checks.
    requires_system_checks: list[str] = []

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
                settings.ZIPLINE,
                processes=options["processes"],
                concurrency=options["concurrency"],
                queues=options["queues"],
            )
        except PoolConfigError as exc:
            raise CommandError(str(exc), returncode=ExitCode.CONFIG) from None
        preflight(
            get_broker(),
            settings.REDIS_URL,
            require_noeviction=settings.ZIPLINE.redis.require_noeviction,
            wait_for_redis=False,  # no stand-in outside make run: say which Redis did not answer
        )
        sys.exit(run_pool(pool))
