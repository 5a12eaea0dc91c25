#!/usr/bin/env python
"""Django's command-line utility for ZipLine."""

import gc
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "zipline_site.settings")
    from zipline_site.installed_apps import is_lean

    if is_lean(sys.argv):
        # runworkers: no collection while it imports (about a tenth of its start-up's CPU time); the
        # supervisor freezes what is loaded before it forks and turns the collector on again, in itself
        # and in each worker (workers/supervisor.py).
        gc.disable()
    from zipline_site import localenv
    from zipline_site.config import config_file_from_argv

    used = localenv.apply(os.environ, sys.argv)  # make run's settings, when the caller set none
    if used is not None:
        print(f"zipline: no JQS_* variable set: using make run's settings from {used}", file=sys.stderr)

    config_file = config_file_from_argv(sys.argv)
    if config_file is not None:
        if not config_file.strip():
            print("zipline: configuration error: --config='': expected the path of a YAML file", file=sys.stderr)
            sys.exit(2)
        os.environ["JQS_CONFIG"] = config_file
    from django.core.management import execute_from_command_line
    from django.db import OperationalError

    try:
        execute_from_command_line(sys.argv)
    except OperationalError as exc:  # Django's own commands (migrate...) would end in a traceback
        if "--traceback" in sys.argv:
            raise
        from jobs.command_errors import first_line
        from zipline_site.exit_codes import ExitCode

        print(
            f"CommandError: database error: {first_line(exc)} (is the database up? JQS_DATABASE_URL)", file=sys.stderr
        )
        sys.exit(ExitCode.UNAVAILABLE)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C before a command installs its own handler (start-up, imports)
        from zipline_site.exit_codes import ExitCode

        sys.exit(ExitCode.INTERRUPTED)
