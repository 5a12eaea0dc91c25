"""A unique job's terms as submitted: its key, until when it holds, and how long at most.

Apart from :mod:`jobs.validation` (which checks the fields) and :mod:`jobs.uniqueness` (which holds
the keys), so that both can import them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder

MAX_UNIQUE_KEY = 200
UNIQUE_UNTIL = ("start", "finish")


@dataclass(frozen=True)
class Uniqueness:
    """A unique job's terms: its key, how long the key is held at most, and until what."""

    key: str
    until: str  # one of UNIQUE_UNTIL
    window: float  # seconds


def retention_limit() -> tuple[float, str]:
    """The longest ``unique_for``: the shorter retention of finished jobs, and its setting's name.

    A duplicate is answered with the first job, so the first job must outlive its window.
    """
    scheduler = settings.ZIPLINE.scheduler
    if scheduler.retention_failed < scheduler.retention_completed:
        return scheduler.retention_failed, "JQS_RETENTION_FAILED"
    return scheduler.retention_completed, "JQS_RETENTION_COMPLETED"


def default_unique_key(job_type: str, queue: str, payload: Any) -> str:
    """The key of a unique job given none: its type, queue and a hash of its payload (keys sorted,
    so the same object written in another order is the same job)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)
    return f"{job_type}:{queue}:{hashlib.sha256(canonical.encode()).hexdigest()}"
