"""Small helpers shared by the tests: settings overrides and bounded waits."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from django.conf import settings
from django.test import override_settings

T = TypeVar("T")


@contextmanager
def override_zipline(**values: Any) -> Iterator[None]:
    """Run with some ZipLine settings changed (``settings.ZIPLINE`` is a frozen Config; its sections are rebuilt)."""
    config = settings.ZIPLINE
    changed = dataclasses.replace(config, values={**config.values, **values})
    with override_settings(ZIPLINE=changed):
        yield


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, message: str = "") -> T:
    """Poll ``predicate`` until it returns something truthy; fail with ``message`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or predicate}")
        time.sleep(interval)


class DrivenClock:
    """The scripts' clock for a test (``jobs.clock.Clock``): it starts at the wall clock's time and
    moves only when the test advances it, so a lease expires or a job falls due without a sleep."""

    def __init__(self, start_ms: int | None = None) -> None:
        self.ms = time.time_ns() // 1_000_000 if start_ms is None else start_ms

    def script_ms(self) -> int:
        return self.ms

    def advance(self, ms: int) -> None:
        self.ms += ms


SEED_JOB = {
    "name": "send-welcome-email",
    "type": "send_email",
    "payload": {"email": "user@example.com", "subject": "Welcome!", "body": "Thanks for signing up."},
    "priority": 10,
    "queue": "emails",
    "retry": {"max_retries": 3, "backoff": "exponential", "initial_delay": "1s", "max_delay": "1h"},
}
"""The seed's example job, as the REST API takes it."""

EMAIL_PAYLOAD = {"email": "user@example.com"}
"""The smallest valid ``send_email`` payload (subject and body default to empty)."""


def make_context(seconds: float = 30.0) -> Any:
    """A processor context for calling a processor directly, with ``seconds`` until its deadline."""
    from jobs.registry import Context

    return Context(job_id="x", attempt=1, deadline=time.monotonic() + seconds)


def run_processor(processor: Any, payload: Any, ctx: Any = None) -> Any:
    """Call ``processor`` on a job that has only a payload (all a processor reads)."""
    from types import SimpleNamespace

    return processor.process(SimpleNamespace(payload=payload), ctx or make_context())


def run_attempt(
    job: Any, outcome: str = "failed", *, error: str = "", result: Any = None, permanent: bool = True
) -> Any:
    """One attempt of ``job`` through the state machine, recorded the way a worker records it."""
    from django.utils import timezone

    from jobs import states
    from jobs.models import Job

    [claimed] = states.claim([str(job.pk)], "test-host:1:abc")
    now = timezone.now()
    trace = f'Traceback (most recent call last):\n  File "job.py", line 3, in run\n{error}' if error else ""
    attempt = states.AttemptResult(
        claimed, outcome, now, now, 0.25, result=result, error=error, traceback=trace, permanent=permanent
    )
    states.record([attempt])
    return Job.objects.get(pk=job.pk)


def token_client(user: Any) -> Any:
    """A DRF test client that sends a new API token of ``user``."""
    from rest_framework.test import APIClient

    from jobs.tokens import create_token

    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {create_token(user)}")
    return c


def json_records(text: str) -> list[dict[str, Any]]:
    """The JSON log records in a process's output (anything else it printed is skipped)."""
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records
