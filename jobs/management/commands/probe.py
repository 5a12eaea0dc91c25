"""``python manage.py probe workers|scheduler [--max-age 60s]``: the liveness probe of a long-running component.

Exits 0 when the component's heartbeat file is fresh, else 1 with one line on stderr. It reads one file and
never touches the database or Redis, so it is cheap enough for a Docker HEALTHCHECK or a Kubernetes exec
probe. The logic lives in :mod:`zipline_site.liveness`.
"""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from zipline_site import liveness
from zipline_site.durations import DurationError, format_duration, parse_duration
from zipline_site.exit_codes import ExitCode


def max_age_argument(value: str) -> float:
    """An argparse ``type=``: a Go-style duration above zero, in seconds; a bad one is a usage error."""
    try:
        seconds = parse_duration(value)
    except DurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"expected a duration above zero, got {value!r}")
    return seconds


class Command(BaseCommand):
    help = "Exit 0 if the component's heartbeat is fresh, else 1 with one line saying why."

    # A probe runs every few seconds: no system checks, no database, no migrations check.
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("component", choices=liveness.COMPONENTS, help="the component to probe")
        parser.add_argument(
            "--max-age",
            type=max_age_argument,
            default=liveness.DEFAULT_MAX_AGE,
            help=f"oldest heartbeat still alive, a Go-style duration (default {format_duration(liveness.DEFAULT_MAX_AGE)})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        max_age = options["max_age"]
        if isinstance(max_age, str):  # call_command(max_age="60s") bypasses argparse's type=
            try:
                max_age = max_age_argument(max_age)
            except argparse.ArgumentTypeError as exc:
                raise CommandError(f"--max-age: {exc}") from None
        component = options["component"]
        if component not in liveness.COMPONENTS:
            raise CommandError(f"unknown component {component!r}: expected one of {', '.join(liveness.COMPONENTS)}")
        problem = liveness.problem(component, float(max_age))
        if problem is not None:
            self.stderr.write(problem)
            raise SystemExit(ExitCode.FAILURE)
        seconds = liveness.age(component) or 0.0
        self.stdout.write(f"{component}: alive, last heartbeat {format_duration(seconds)} ago")
