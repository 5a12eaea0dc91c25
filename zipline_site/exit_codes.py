"""The exit statuses of ZipLine's commands, one name each, so every command means the same by a number.

An orchestrator can tell them apart: a configuration error will not mend by restarting, a dependency out of
reach may.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What a ZipLine command's exit status says."""

    OK = 0
    FAILURE = 1  # anything else: a failed probe, a second stop signal, a user name createtoken refuses
    CONFIG = 2  # a setting, a flag, the database's migrations or Redis's answer needs fixing first
    UNAVAILABLE = 3  # the database or Redis does not answer (or cannot serve the command's request)
    INTERRUPTED = 130  # Ctrl-C during start-up, as shells report SIGINT (128 + 2)
