"""``python manage.py runkafka``: turn the job submissions of a Kafka topic into jobs, until SIGTERM or SIGINT.

Thin: the loop is :mod:`jobs.kafka` (docs/kafka.md). The first stop signal lets the message under way finish,
commits the offsets handled, and exits 0; a second one exits at once (its messages are delivered again later).
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from jobs.kafka import runner
from zipline_site.exit_codes import ExitCode


class Command(BaseCommand):
    help = "Consume job submissions (REST's JSON) from JQS_KAFKA_TOPIC; refused ones go to JQS_KAFKA_DEAD_LETTER_TOPIC."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--config", help="YAML configuration file (JQS_CONFIG)")

    def handle(self, *args: Any, **options: Any) -> None:
        config = settings.ZIPLINE.kafka
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            if stop.is_set():
                raise SystemExit(ExitCode.FAILURE)
            stop.set()

        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, on_signal)
        try:
            runner.run(config, stop)
        except runner.CannotStart as exc:
            sys.stderr.write(f"runkafka: {exc}\n")
            raise SystemExit(exc.code) from None
