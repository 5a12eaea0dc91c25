"""The JSON log line: the fields, the timestamp to the millisecond in UTC, and records without unused fields."""

from __future__ import annotations

import io
import json
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jobs import client
from jobs.broker import Broker
from jobs.models import Job, Status
from tests.helpers import wait_for
from tests.procs import running
from zipline_site.logs import JsonFormatter, LineHandler, held_lines, log_line


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


class _CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def _line_logger(stream: io.StringIO) -> logging.Logger:
    handler = LineHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(f"zipline.test.held.{id(stream)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def test_held_lines_are_written_in_one_call_even_when_the_loop_raises() -> None:
    stream = _CountingStream()
    logger = _line_logger(stream)
    with pytest.raises(RuntimeError), held_lines():
        for n in range(3):
            logger.info("job %d", n, extra={"n": n})
        assert stream.writes == 0  # held until the block ends
        raise RuntimeError("the loop failed")
    assert stream.writes == 1
    assert [json.loads(line)["n"] for line in stream.getvalue().splitlines()] == [0, 1, 2]


def test_lines_are_written_at_once_outside_held_lines_and_in_other_threads() -> None:
    stream = _CountingStream()
    logger = _line_logger(stream)
    logger.info("alone")
    assert stream.writes == 1
    with held_lines():
        thread = threading.Thread(target=logger.info, args=("from another thread",))
        thread.start()
        thread.join()
        assert stream.writes == 2  # that thread held nothing
        logger.info("held")
        assert stream.writes == 2
    assert [json.loads(line)["message"] for line in stream.getvalue().splitlines()] == [
        "alone",
        "from another thread",
        "held",
    ]


_JOB_LINE = ("job %s %s on %s in %.1fms", ("a1", "completed", "default", 0.25))
_JOB_FIELDS = {"job_id": "a1", "queue": "default", "duration_ms": 0.25, "at": datetime(2026, 1, 1)}


def _without_time(line: str) -> dict[str, object]:
    entry = json.loads(line)
    assert datetime.fromisoformat(entry.pop("time")).tzinfo is not None
    return entry


def test_log_line_writes_what_the_logger_would_and_holds_it_as_emit_does() -> None:
    stream = _CountingStream()
    logger = _line_logger(stream)
    msg, args = _JOB_LINE
    logger.info(msg, *args, extra=_JOB_FIELDS)
    with held_lines():
        log_line(logger, logging.INFO, msg, args, _JOB_FIELDS)
        log_line(logger, logging.WARNING, "no args", (), {"n": 1})
        assert stream.writes == 1  # held until the block ends
    standard, direct, plain = stream.getvalue().splitlines()
    assert _without_time(direct) == _without_time(standard)
    assert _without_time(plain) == {"level": "warning", "logger": logger.name, "message": "no args", "n": 1}


def test_log_line_takes_the_loggers_path_when_anything_else_could_see_the_record() -> None:
    stream = _CountingStream()
    logger = _line_logger(stream)
    msg, args = _JOB_LINE
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    logger.addHandler(Keep())  # another handler gets a real record
    log_line(logger, logging.INFO, msg, args, _JOB_FIELDS)
    assert [(r.getMessage(), r.job_id) for r in seen] == [("job a1 completed on default in 0.2ms", "a1")]  # type: ignore[attr-defined]
    logger.handlers.pop()
    logger.addFilter(lambda record: False)  # a filter still drops the line
    log_line(logger, logging.INFO, msg, args, _JOB_FIELDS)
    assert stream.writes == 1  # only the line of the first call
    logger.filters.clear()
    made = logging.getLogRecordFactory()
    logging.setLogRecordFactory(lambda *a, **k: seen.append(made(*a, **k)) or seen[-1])  # type: ignore[func-returns-value]
    try:
        log_line(logger, logging.INFO, msg, args, _JOB_FIELDS)
    finally:
        logging.setLogRecordFactory(made)
    assert len(seen) == 2 and stream.writes == 2  # the factory made the record that was written


def test_log_line_reaches_the_handlers_of_the_parents_at_their_levels() -> None:
    parent_stream, child_stream = _CountingStream(), _CountingStream()
    parent = _line_logger(parent_stream)
    child = logging.getLogger(f"{parent.name}.child")
    handler = LineHandler(child_stream)
    handler.setFormatter(JsonFormatter())
    handler.setLevel(logging.WARNING)
    child.handlers[:] = [handler]
    log_line(child, logging.INFO, "info", (), {})
    log_line(child, logging.WARNING, "warning", (), {})
    assert [json.loads(line)["message"] for line in parent_stream.getvalue().splitlines()] == ["info", "warning"]
    assert [json.loads(line)["message"] for line in child_stream.getvalue().splitlines()] == ["warning"]
    child.propagate = False
    log_line(child, logging.WARNING, "kept below", (), {})
    assert parent_stream.writes == 2 and child_stream.writes == 2


def test_the_settings_log_through_the_line_handler() -> None:
    assert any(isinstance(handler, LineHandler) for handler in logging.getLogger().handlers)


@pytest.mark.django_db(transaction=True)
def test_a_real_pool_writes_one_json_line_per_job(broker: Broker, tmp_path: Path) -> None:
    """The defaults' per-job line, through the line handler's held writes, from a real ``runworkers``."""
    jobs = [client.enqueue("test_noop") for _ in range(5)]
    with running(["runworkers", "--processes", "1"], tmp_path) as pool:
        wait_for(
            lambda: Job.objects.filter(pk__in=[j.pk for j in jobs], status=Status.COMPLETED).count() == 5,
            20,
            message="the five jobs completed",
        )
        ids = {str(job.pk) for job in jobs}
        wait_for(lambda: ids <= {r.get("job_id") for r in pool.records()}, 10, message="a line per job")
        lines = [r for r in pool.records() if r.get("logger") == "zipline.job"]
    assert sorted(r["job_id"] for r in lines) == sorted(ids), pool.log()[-3000:]  # one line each
    for record in lines:
        assert record["outcome"] == "completed" and record["queue"] == "default" and record["attempt"] == 1
        assert record["message"].startswith(f"job {record['job_id']} test_noop completed on default attempt 1 in ")
