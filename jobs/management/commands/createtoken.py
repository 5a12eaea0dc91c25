"""``python manage.py createtoken <user> [--viewer | --operator] [--staff] [--superuser] [--regenerate]``:
make a new API token for the user (and the user if missing) and print its key, once. The logic lives in
:mod:`jobs.tokens`; the roles in :mod:`jobs.roles`."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.command_errors import dependency_errors
from jobs.roles import OPERATOR, VIEWER
from jobs.tokens import BadUsername, issue_token
from zipline_site.exit_codes import ExitCode


class Command(BaseCommand):
    help = (
        "Make a new API token for a user (made if missing) and print it, once: use it as "
        "'Authorization: Bearer <token>'. Without a role flag the token may only submit jobs."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        role = parser.add_mutually_exclusive_group()
        role.add_argument("--viewer", action="store_true", help="may read jobs, queues, stats and schedules")
        role.add_argument(
            "--operator",
            action="store_true",
            help="may also cancel, retry and delete jobs, pause queues, edit schedules",
        )
        parser.add_argument("--create", action="store_true", help="accepted for compatibility: users are made anyway")
        parser.add_argument("--staff", action="store_true", help="make the user staff (admin login)")
        parser.add_argument("--superuser", action="store_true", help="make the user a superuser (every permission)")
        parser.add_argument("--regenerate", action="store_true", help="revoke the user's other tokens")

    def handle(self, *args: Any, **options: Any) -> None:
        roles = [role for role in (VIEWER, OPERATOR) if options[role]]
        try:
            with dependency_errors():
                issued = issue_token(
                    options["username"],
                    staff=options["staff"],
                    superuser=options["superuser"],
                    roles=roles,
                    regenerate=options["regenerate"],
                )
        except BadUsername as exc:
            raise CommandError(str(exc), returncode=ExitCode.FAILURE) from None
        if issued.user_created:
            self.stderr.write(f"created user {issued.username!r}")
        if issued.revoked:
            self.stderr.write(f"revoked {issued.revoked} older token(s) of {issued.username!r}")
        self.stdout.write(issued.key)
