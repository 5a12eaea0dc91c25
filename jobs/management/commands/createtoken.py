"""``python manage.py createtoken <user> [--create] [--staff] [--superuser] [--regenerate]``: print the
user's API token (making it if needed). The logic lives in :mod:`jobs.tokens`."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.command_errors import dependency_errors
from jobs.tokens import BadUsername, UnknownUser, issue_token


class Command(BaseCommand):
    help = "Print a user's API token (use it as 'Authorization: Bearer <token>'); make it if it does not exist."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--create", action="store_true", help="create the user if it does not exist")
        parser.add_argument("--staff", action="store_true", help="make the user staff (admin login)")
        parser.add_argument("--superuser", action="store_true", help="make the user a superuser (every permission)")
        parser.add_argument("--regenerate", action="store_true", help="replace the user's token with a new one")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            with dependency_errors():
                issued = issue_token(
                    options["username"],
                    create=options["create"],
                    staff=options["staff"],
                    superuser=options["superuser"],
                    regenerate=options["regenerate"],
                )
        except (UnknownUser, BadUsername) as exc:
            raise CommandError(str(exc), returncode=1) from None
        if issued.user_created:
            self.stderr.write(f"created user {issued.username!r}")
        self.stdout.write(issued.key)
