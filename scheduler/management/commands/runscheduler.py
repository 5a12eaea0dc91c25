"""``python manage.py runscheduler [--config FILE]``: run the scheduler until SIGTERM or SIGINT.

Thin: the loop is :class:`scheduler.service.Scheduler`. The first signal stops it after the current step
(exit 0); a second one exits at once. Each loop writes the liveness heartbeat read by
``manage.py probe scheduler``.
"""

from __future__ import annotations

import signal
import time
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from jobs.broker import get_broker
from jobs.preflight import preflight
from scheduler.service import Scheduler
from zipline_site.exit_codes import ExitCode

HEARTBEAT_EVERY = 1.0


def _heartbeat() -> Any:
    """A throttled ``liveness.touch("scheduler")``, or nothing if the liveness module is absent."""
    try:
        from zipline_site.liveness import touch
    except ImportError:
        return None
    last = [0.0]

    def beat() -> None:
        now = time.monotonic()
        if now - last[0] >= HEARTBEAT_EVERY:
            last[0] = now
            try:
                touch("scheduler")
            except OSError:
                pass

    return beat


class Command(BaseCommand):
    help = (
        "Run the scheduler: promote due jobs, reclaim expired leases, rebuild Redis, fire cron jobs, delete old jobs."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        # Applied by manage.py before Django reads its settings; accepted here so argparse knows it.
        parser.add_argument("--config", help="YAML configuration file (JQS_CONFIG)")

    def handle(self, *args: Any, **options: Any) -> None:
        preflight(
            get_broker(),
            settings.REDIS_URL,
            require_noeviction=settings.ZIPLINE.redis.require_noeviction,
            wait_for_redis=True,  # the scheduler logs the outage and retries with backoff
        )
        scheduler = Scheduler(on_loop=_heartbeat(), config=settings.ZIPLINE)

        def on_signal(signum: int, frame: FrameType | None) -> None:
            if scheduler.stopping.is_set():
                raise SystemExit(ExitCode.FAILURE)
            scheduler.stop()

        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # SIGHUP: a closed terminal
            signal.signal(signum, on_signal)
        scheduler.run()
