"""Telling the API processes that jobs ended, so that a request waiting on one answers at once
(``GET /api/v1/jobs/{id}?wait=30s``; :mod:`jobs.service.watch` listens).

Every path that ends a job calls :func:`announce` inside its transaction (the worker's recorder once per
batch through :func:`jobs.states.record`, a cancel, an expiry, a lost worker's job, and the deletion of
a job that had not ended); the ids are
published in one PUBLISH after the commit, so a woken request reads the ended row. A publish that fails
(Redis out of reach) is logged and dropped: a waiting request then answers at its deadline, with the
row as it is, and the listener re-checks every waiting request when it subscribes again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import transaction

from jobs.broker import BrokerUnavailable, get_broker

logger = logging.getLogger("zipline.endings")


def announce(job_ids: Iterable[object]) -> None:
    """Publish ``job_ids`` as ended once the current transaction commits (at once outside one)."""
    ids = [str(one) for one in job_ids]
    if ids:
        transaction.on_commit(lambda: publish(ids))


def publish(ids: list[str]) -> None:
    try:
        get_broker().publish_ended(ids)
    except BrokerUnavailable as exc:
        logger.warning("could not tell the API that jobs ended", extra={"jobs": len(ids), "error": str(exc)})
