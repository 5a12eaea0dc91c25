"""The JSON log line: the fields, the timestamp to the millisecond in UTC, and records without unused fields."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from zipline_site.logs import JsonFormatter


def _record(created: float, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("zipline.jobs", logging.WARNING, "", 0, "job %s %s", ("a1", "failed"), None)
    record.created = created
    record.__dict__.update(extra)
    return record


def test_a_line_holds_time_level_logger_message_and_the_extra_fields() -> None:
    line = JsonFormatter().format(_record(1764887664.4537, job_id="a1", duration_ms=0.5, at=datetime(2026, 1, 1)))
    assert json.loads(line) == {
        "time": "2025-12-04T22:34:24.453+00:00",
        "level": "warning",
        "logger": "zipline.jobs",
        "message": "job a1 failed",
        "job_id": "a1",
        "duration_ms": 0.5,
        "at": "2026-01-01 00:00:00",  # not JSON: written as text
    }


def test_the_time_is_isoformat_in_utc_across_seconds() -> None:
    formatter = JsonFormatter()
    for created in (1764887664.0, 1764887664.999, 1764887665.001, 1764887665.5, 1764887600.25, 1764887665.75):
        expected = datetime.fromtimestamp(created, tz=UTC).isoformat(timespec="milliseconds")
        assert json.loads(formatter.format(_record(created)))["time"] == expected, created


def test_settings_skip_the_caller_but_keep_the_process_for_gunicorns_format() -> None:
    # zipline_site.settings did this at start-up (the test settings import it).
    assert logging._srcfile is None
    record = logging.getLogger("zipline.test").makeRecord("zipline.test", logging.INFO, "", 0, "m", (), None)
    assert record.process is not None  # gunicorn's format is "[%(process)d]": None would fail to format
    assert logging.Formatter("[%(process)d] %(filename)s:%(lineno)d %(message)s").format(record).endswith(" m")
