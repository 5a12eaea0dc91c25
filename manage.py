#!/usr/bin/env python
"""Django's command-line utility for ZipLine."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "zipline_site.settings")
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

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C before a command installs its own handler (start-up, imports)
        sys.exit(130)
