"""What happens around recording an attempt's outcome: its bounded result, its metrics, its log line.

Pure functions of the endings, kept out of the worker process so that it only coordinates.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from jobs import tally
from jobs.ids import id_text
from jobs.models import Outcome
from jobs.states import AttemptResult, Recorded
from jobs.validation import holds_nul
from workers import metrics
from workers.execution import Ending, described
from zipline_site.logs import held_lines, log_line

job_logger = logging.getLogger("zipline.job")
MAX_RESULT_PREVIEW = 4096
FAILED_OUTCOMES = (Outcome.FAILED, Outcome.TIMEOUT)


def bounded_result(result: Any, max_bytes: int) -> Any:
    """A result that is not JSON, or too large, is kept as a flagged preview (F20).

    "Not JSON" is strict JSON as PostgreSQL's ``jsonb`` takes it: no NaN or infinities, and no NUL
    character in a string. A result it refused would fail its whole batch of outcomes on every retry.
    """
    try:
        text = json.dumps(result, default=str, allow_nan=False)
    except Exception as exc:  # noqa: BLE001 - TypeError, ValueError, RecursionError, or a str() of the app's
        error = described(str, exc, "str()")
        return _not_json(f"result is not JSON: {type(exc).__name__}: {error}", described(repr, result, "repr()"))
    if holds_nul(text):
        return _not_json("result is not JSON the database can store: a string holds a NUL character", text)
    if len(text) > max_bytes:
        return {"truncated": True, "size": len(text), "preview": text[:MAX_RESULT_PREVIEW]}
    return json.loads(text) if not isinstance(result, (dict, list, str, int, float, bool)) else result


def _not_json(error: str, preview: str) -> dict[str, Any]:
    return {"truncated": True, "error": error, "preview": preview[:MAX_RESULT_PREVIEW].replace("\x00", "\ufffd")}


def attempt_result(ending: Ending, max_result_bytes: int) -> AttemptResult:
    """The state machine's view of how an attempt ended."""
    result = ending.result
    if result is not None:
        result = bounded_result(result, max_result_bytes)
    return AttemptResult(
        job=ending.running.job,
        outcome=ending.outcome,
        started_at=ending.running.started_at,
        finished_at=ending.finished_at or ending.running.started_at,
        duration=ending.duration,
        result=result,
        error=ending.error,
        traceback=ending.traceback,
        permanent=ending.permanent,
    )


def account(endings: Sequence[Ending], recorded: Sequence[Recorded]) -> tally.Tally:
    """Metrics (summed per queue and type: a multiprocess metric write is not free) and one log
    line per outcome; returns the attempts counted, as :mod:`jobs.tally` defines them."""
    statuses: defaultdict[tuple[str, str], list[str | None]] = defaultdict(list)
    durations: defaultdict[tuple[str, str], list[float]] = defaultdict(list)
    with held_lines():  # one write for the batch's lines
        for ending, rec in zip(endings, recorded, strict=True):
            job = ending.running.job
            statuses[job.queue, job.type].append(rec.status)
            durations[job.queue, job.type].append(ending.duration)
            if rec.status is None:
                metrics.STALE_WRITES.inc()
            log_outcome(ending, rec)
    total = tally.Tally()
    for labels, of_labels in statuses.items():
        job_metrics = metrics.for_job(*labels)
        metrics.observe_all(job_metrics.duration, durations[labels])
        job_metrics.active.dec(len(of_labels))
        counted = tally.of_statuses(of_labels)
        metrics.count(job_metrics, counted)
        total += counted
    return total


def log_outcome(ending: Ending, rec: Recorded) -> None:
    """One structured line per outcome: job id, type, queue, attempt, duration, outcome."""
    job = ending.running.job
    level = logging.WARNING if ending.outcome in FAILED_OUTCOMES else logging.INFO
    if not job_logger.isEnabledFor(level):
        return
    job_id = id_text(job)
    log_line(
        job_logger,
        level,
        "job %s %s %s on %s attempt %d in %.1fms",
        (
            job_id,
            job.type,
            rec.status or "stale (attempt superseded)",
            job.queue,
            job.attempt_number,
            ending.duration * 1000,
        ),
        {
            "job_id": job_id,
            "type": job.type,
            "queue": job.queue,
            "attempt": job.attempt_number,
            "duration_ms": round(ending.duration * 1000, 3),
            "outcome": ending.outcome,
            "status": rec.status or "stale",
            **({"error": ending.error[:500]} if ending.error else {}),
        },
    )
