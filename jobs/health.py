"""The health check behind ``GET /health``: can this process reach its database and Redis right now?

Each check has its own short timeout and its own connection, so a hung dependency makes the check
answer "error" within seconds instead of hanging the probe, and a broken request connection cannot
hide a working database (or the reverse). The answer keeps the seed's shape and adds both checks;
why a check failed is logged, and shown only to authenticated callers (:func:`may_see_details`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.utils import timezone

from jobs.broker import BrokerUnavailable, probe_broker
from zipline_site import __version__

logger = logging.getLogger("zipline.health")

DATABASE_TIMEOUT = 2  # seconds; PostgreSQL's connect_timeout takes whole seconds
REDIS_TIMEOUT = 1.0


def _elapsed_ms(start: float) -> float:
    return round((time.monotonic() - start) * 1000, 2)


def _error(exc: BaseException) -> dict[str, Any]:
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return {"status": "error", "error": f"{type(exc).__name__}: {first_line}"[:300]}


def check_database() -> dict[str, Any]:
    """Open a fresh connection (short connect timeout) and run ``SELECT 1``."""
    start = time.monotonic()
    wrapper = connections.create_connection(DEFAULT_DB_ALIAS)
    if wrapper.vendor == "postgresql":
        options = {**wrapper.settings_dict.get("OPTIONS", {}), "connect_timeout": DATABASE_TIMEOUT}
        wrapper.settings_dict = {**wrapper.settings_dict, "OPTIONS": options}
    try:
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure means "unreachable" to a probe
        logger.warning("health: database check failed", extra={"error": str(exc)})
        return _error(exc)
    finally:
        try:
            wrapper.close()
        except Exception:  # noqa: BLE001, S110 - closing a half-open connection may fail too
            pass
    return {"status": "ok", "latency_ms": _elapsed_ms(start)}


def check_redis() -> dict[str, Any]:
    """``PING`` with a one-second timeout and no retries."""
    start = time.monotonic()
    try:
        broker = probe_broker(REDIS_TIMEOUT)
        broker.ping()
        master = broker.master_address()  # through Sentinel: the master the sentinels name now
    except BrokerUnavailable as exc:
        logger.warning("health: redis check failed", extra={"error": str(exc)})
        return _error(exc.__cause__ or exc)  # the cause names what failed (ConnectionError, TimeoutError)
    state: dict[str, Any] = {"status": "ok", "latency_ms": _elapsed_ms(start)}
    if master:
        state["master"] = master
    return state


def workers() -> dict[str, Any]:
    """The seed's ``workers`` object: are any workers heartbeating, and how many."""
    from jobs.broker import get_broker
    from jobs.broker.heartbeat import live_workers

    try:
        count = len(live_workers(get_broker()))
    except BrokerUnavailable:
        count = 0
    return {"running": count > 0, "count": count}


def _without_error(check: dict[str, Any]) -> dict[str, Any]:
    """The check without what names hosts (an error's message, the master's address)."""
    return {key: value for key, value in check.items() if key not in ("error", "master")}


def health_payload(detailed: bool = True) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body): 200 and ``"ok"`` when both checks pass, else 503 and ``"error"``.

    Without ``detailed`` a failed check says only ``"error"``: its message names hosts, ports and
    database names, which an anonymous caller must not learn (the log has it either way).
    """
    database = check_database()
    redis_state = check_redis()
    if not detailed:
        database, redis_state = _without_error(database), _without_error(redis_state)
    healthy = database["status"] == "ok" and redis_state["status"] == "ok"
    body = {
        "status": "ok" if healthy else "error",
        "timestamp": timezone.now().isoformat().replace("+00:00", "Z"),
        "version": __version__,
        "workers": workers() if redis_state["status"] == "ok" else {"running": False, "count": 0},
        "redis": redis_state,
        "database": database,
    }
    return (200 if healthy else 503), body


def may_see_details(request: Any) -> bool:
    """Whether the caller of ``/health`` may read why a check failed: a staff session or a valid token.

    ``request`` is DRF's. A bad or missing token is not an error here: the probe still gets its answer.
    """
    from django.contrib.auth import get_user
    from rest_framework.exceptions import APIException

    from jobs.api.auth import BearerTokenAuthentication

    session_user = get_user(request._request)  # DRF replaced request.user with its own (anonymous) one
    if session_user.is_active and session_user.is_staff:
        return True
    try:
        return BearerTokenAuthentication().authenticate(request) is not None
    except APIException:
        return False
