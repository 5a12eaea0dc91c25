"""Structured logging: one JSON object per line, with the fields a log call passes in ``extra``.

A worker writes one line per job (the default, at info), so a line's cost is part of every job's: the
formatter builds the second's timestamp once, and encodes with one encoder made once (``json.dumps`` with
options makes a new one per call).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from zipline_site.json_text import dict_encoder

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_ENCODE = dict_encoder(json.JSONEncoder(default=str))  # the output of json.dumps(entry, default=str)
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
        fields = vars(record)
        extra = {key: fields[key] for key in fields if key not in _STANDARD and key[0] != "_"}
        if record.exc_info:
            extra["exception"] = self.formatException(record.exc_info)
        return self.line(record.created, record.levelno, record.name, record.getMessage(), extra)

    def line(self, created: float, level: int, logger: str, message: str, extra: dict[str, Any]) -> str:
        """The line of a record made at ``created`` (``time.time()``) with these fields."""
        entry = {
            "time": self._time(created),
            "level": _LEVELS.get(level) or logging.getLevelName(level).lower(),
            "logger": logger,
            "message": message,
        }
        entry |= extra
        return _ENCODE(entry)


def skip_unused_record_fields() -> None:
    """Records without the calling line, which no format ZipLine sets up prints.

    Finding the caller walks the stack for every record, and a worker writes one per job; Python's logging
    HOWTO ("Optimization") names this switch for it. The process and thread stay: gunicorn's own format
    prints the process id (a format that names the caller gets "(unknown file)", never an error).
    """
    logging.logMultiprocessing = False
    logging._srcfile = None


_holding = threading.local()  # .lines: {handler: [formatted lines]} while a thread holds its lines


class LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes a thread's held lines (:func:`held_lines`) in one call.

    A worker logs one line per job, and each line written alone is a ``write`` system call (stderr flushes
    at every newline): about 4 µs a job. Outside :func:`held_lines` it is a plain ``StreamHandler``.
    """

    def emit(self, record: logging.LogRecord) -> None:
        held = getattr(_holding, "lines", None)
        if held is None:
            super().emit(record)
            return
        try:
            held.setdefault(self, []).append(self.format(record))
        except Exception:  # noqa: BLE001 - as StreamHandler.emit: a line that cannot be formatted is reported
            self.handleError(record)

    def emit_line(self, line: str) -> None:
        """Write a line formatted already (:func:`log_line`), or hold it as :meth:`emit` would."""
        held = getattr(_holding, "lines", None)
        if held is None:
            self.write_held([line])
        else:
            held.setdefault(self, []).append(line)

    def write_held(self, lines: list[str]) -> None:
        try:
            with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
                self.stream.write(self.terminator.join(lines) + self.terminator)
                self.flush()
        except Exception:  # noqa: BLE001 - a closed or full stream must not fail the caller (as emit)
            self.handleError(logging.LogRecord("zipline", logging.ERROR, "", 0, "held lines lost", (), None))


def log_line(logger: logging.Logger, level: int, msg: str, args: tuple[Any, ...], extra: dict[str, Any]) -> None:
    """``logger.log(level, msg, *args, extra=extra)``, made without a ``LogRecord`` where that changes nothing.

    A worker logs a line per job, and about half of that line's cost is the record (its constructor reads the
    clock, the thread, the process) and the walk through ``Logger.handle``. When every handler the record would
    reach is a :class:`LineHandler` with a :class:`JsonFormatter`, nothing filters on the way and records come
    from logging's own factory, the line is made from the fields directly: the same text ``format`` would give.
    Any other set-up (another handler, a filter, pytest's capture, a record factory) takes the standard path.
    """
    handlers = _line_handlers(logger, level)
    if handlers is None:
        logger.log(level, msg, *args, extra=extra)
        return
    formatter: JsonFormatter = handlers[0].formatter  # type: ignore[assignment]  # checked by _line_handlers
    line = formatter.line(time.time(), level, logger.name, msg % args if args else msg, extra)
    for handler in handlers:
        handler.emit_line(line)


def _line_handlers(logger: logging.Logger, level: int) -> list[LineHandler] | None:
    """The handlers a record of ``logger`` at ``level`` reaches, if each is a plain JSON :class:`LineHandler`
    and no logger or handler on the way filters; None otherwise (and when none is reached: logging's last
    resort then writes it)."""
    if logger.disabled or logging.getLogRecordFactory() is not logging.LogRecord:
        return None
    reached: list[LineHandler] = []
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        for handler in current.handlers:
            if type(handler) is not LineHandler or type(handler.formatter) is not JsonFormatter or handler.filters:
                return None
            if level >= handler.level:
                reached.append(handler)
        current = current.parent if current.propagate else None
    return reached or None


@contextmanager
def held_lines() -> Iterator[None]:
    """Hold this thread's log lines (those of :class:`LineHandler`) and write them in one call at the end.

    Meant for a short loop that logs a line per item (the recorder's outcomes), so nothing is held long;
    the lines are written even when the loop raises.
    """
    if getattr(_holding, "lines", None) is not None:  # nested: the outer one writes
        yield
        return
    held: dict[LineHandler, list[str]] = {}
    _holding.lines = held
    try:
        yield
    finally:
        _holding.lines = None
        for handler, lines in held.items():
            handler.write_held(lines)


@contextmanager
def quieted(name: str, level: int) -> Iterator[None]:
    """The logger ``name`` set to ``level`` for the block, then back to its own level."""
    logger = logging.getLogger(name)
    saved = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(saved)
