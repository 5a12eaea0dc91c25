"""Structured logging: one JSON object per line, with the fields a log call passes in ``extra``.

A worker writes one line per job (the default, at info), so a line's cost is part of every job's: the
formatter builds the second's timestamp once, and encodes with one encoder made once (``json.dumps`` with
options makes a new one per call).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_ENCODE = json.JSONEncoder(default=str).encode  # the output of json.dumps(entry, default=str)
_LEVELS = {level: logging.getLevelName(level).lower() for level in (10, 20, 30, 40, 50)}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line: time, level, logger, message, then every ``extra`` field."""

    _second: tuple[int, str] = (-1, "")  # the last second formatted, and its text (one tuple: thread-safe)

    def _time(self, created: float) -> str:
        """``2026-12-04T22:34:24.453+00:00``: UTC, to the millisecond."""
        second = int(created)
        micros = round((created - second) * 1_000_000)  # as datetime rounds a timestamp, then cut to ms
        if micros == 1_000_000:
            second, micros = second + 1, 0
        cached, text = self._second
        if cached != second:
            text = datetime.fromtimestamp(second, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = (second, text)
        return f"{text}.{micros // 1000:03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self._time(record.created),
            "level": _LEVELS.get(record.levelno) or record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update((key, value) for key, value in vars(record).items() if key not in _STANDARD and key[0] != "_")
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _ENCODE(entry)


def skip_unused_record_fields() -> None:
    """Records without the calling line, which no format ZipLine sets up prints.

    Finding the caller walks the stack for every record, and a worker writes one per job; Python's logging
    HOWTO ("Optimization") names this switch for it. The process and thread stay: gunicorn's own format
    prints the process id (a format that names the caller gets "(unknown file)", never an error).
    """
    logging.logMultiprocessing = False
    logging._srcfile = None
