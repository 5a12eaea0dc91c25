"""``GET /api/v1/jobs/{id}?wait=30s``: answer when the job ends, or with the job as it is when the wait
runs out. The response's ``Zipline-Wait`` header says which (``ended`` or ``timeout``); the job's
``status`` says it too.

Served by ASGI (``zipline_site.asgi``, the production server), the view never blocks a thread on the
wait: it answers the ASGI layer with :data:`DEFER_HEADER` (the seconds left) instead, the layer awaits
the job's ending on the event loop (:mod:`jobs.service.watch`, woken over Redis Pub/Sub) and asks the
view again; only that last answer reaches the client. Served by WSGI alone (``manage.py runserver``,
``make run``), the view waits in its own thread (:func:`jobs.service.wait_for_end`): the same answers.
"""

from __future__ import annotations

import re
from typing import Any

from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

from jobs import service
from jobs.models import Job
from zipline_site.durations import DurationError, parse_duration

#: The longest wait a request may ask for; over it the answer is 400 naming ``wait``.
MAX_WAIT_SECONDS = 60.0
#: The forms ``wait`` takes: one Go-style duration of seconds or milliseconds up to 60 s, or ``1m``
#: (the schema says the same, so that what it calls valid is never refused).
WAIT_PATTERN = r"^(0|([0-9]|[1-5][0-9])(\.[0-9]{1,3})?s|60s|([0-9]{1,4}|[1-5][0-9]{4})(\.[0-9]{1,3})?ms|60000ms|[01]m)$"
#: The response header that tells the client how the wait ended.
OUTCOME_HEADER = "Zipline-Wait"
#: environ keys the ASGI layer sets (a client cannot: its headers arrive as ``HTTP_*``).
MODE_KEY = "zipline.wait.mode"  # "first" on the request's first look, "again" after a wake-up
REMAINING_KEY = "zipline.wait.remaining"  # seconds left, on "again"
#: The header of a view's answer that asks the ASGI layer to wait (never sent to a client).
DEFER_HEADER = "X-Zipline-Wait-Defer"


def parse_wait(request: Request) -> float | None:
    """The ``wait`` query parameter in seconds (None when absent), or 400 naming ``wait``."""
    text = request.query_params.get("wait")
    if text is None:
        return None
    try:
        seconds = parse_duration(text)
    except DurationError as exc:
        raise ValidationError({"wait": [f"{exc}"]}) from None
    if seconds > MAX_WAIT_SECONDS or not re.fullmatch(WAIT_PATTERN, text):
        raise ValidationError({"wait": [f"expected seconds or milliseconds up to 60s (30s, 250ms, 1m), not {text!r}"]})
    return seconds


def is_second_look(request: Request) -> bool:
    """The ASGI layer asking again after a wake-up: the request was already counted by the rate limits."""
    return request.META.get(MODE_KEY) == "again"


def waited_job(request: Request, job_id: str, wait: float) -> tuple[Job | None, dict[str, str]]:
    """The job to answer with and the response's headers; (None, the defer header) when the ASGI
    layer should wait ``seconds`` and ask again."""
    mode = request.META.get(MODE_KEY)
    remaining = float(request.META.get(REMAINING_KEY, 0.0)) if mode == "again" else wait
    job = service.get_job(job_id)
    if not service.has_ended(job) and remaining > 0:
        if mode is not None:
            return None, {DEFER_HEADER: f"{remaining:.3f}"}
        job = service.wait_for_end(job.pk, remaining)
    return job, {OUTCOME_HEADER: "ended" if service.has_ended(job) else "timeout"}


def wait_target(method: str, path: str, query: dict[str, Any]) -> str | None:
    """The job id a request waits on (``GET`` or ``HEAD /api/v1/jobs/{id}?wait=...``), in canonical form;
    else None."""
    if method not in ("GET", "HEAD") or "wait" not in query or not path.startswith("/api/v1/jobs/"):
        return None
    rest = path[len("/api/v1/jobs/") :]
    if "/" in rest:
        return None
    try:
        return str(service.job_id_of(rest))
    except service.JobNotFound:
        return None  # the view answers 404
