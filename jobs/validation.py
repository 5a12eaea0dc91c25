"""Checks a job submission field by field, before anything is written.

The Python API and the REST API share these checks, so a bad job gets the same answer from both:
:class:`InvalidJob` naming the field and what is wrong with the value.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from jobs import payloads
from jobs.lifecycle import Verb, target
from jobs.limits import InvalidLimit, check_group
from jobs.models import PRIORITY_MAX, PRIORITY_MIN, Backoff
from jobs.registry import PayloadError, RetryDefaults, registry, retry_defaults
from jobs.unique_terms import MAX_UNIQUE_KEY, UNIQUE_UNTIL, Uniqueness, default_unique_key, retention_limit
from zipline_site.durations import MAX_DURATION, DurationError, format_duration, parse_duration
from zipline_site.json_text import dict_encoder
from zipline_site.setting_values import read_once

# \A and \Z, not ^ and $: "$" also matches before a final newline, and "default\n" is no queue name.
QUEUE_NAME = re.compile(r"\A[A-Za-z0-9_.:-]{1,64}\Z")
# The same rule as the OpenAPI schema writes it (ECMA-262, where "$" is the end of the text).
QUEUE_NAME_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
MAX_NAME = 200
MAX_IDEMPOTENCY_KEY = 200
RETRY_KEYS = {"max_retries", "backoff", "initial_delay", "max_delay", "jitter"}
# How json.dumps writes a NUL character, which PostgreSQL refuses in jsonb (and in text).
JSON_NUL = "\\u0000"
# ... and only that: an escaped backslash followed by "u0000" is six ordinary characters.
_JSON_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
# How json.dumps starts writing a surrogate code point (U+D800 to U+DFFF).
JSON_SURROGATE = "\\ud"
# One encoder for every payload (json.dumps would build one per call); encode() keeps no state.
_ENCODER = DjangoJSONEncoder(allow_nan=False)
_ENCODE_PAYLOAD = dict_encoder(_ENCODER)
# The same JSON as UTF-8 text, to measure a payload that holds more than ASCII as it is sent and stored.
_UTF8_ENCODER = DjangoJSONEncoder(allow_nan=False, ensure_ascii=False)
MAX_RETRIES_LIMIT = 1000


class InvalidJob(ValueError):
    """A submission ZipLine refuses; ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class PayloadTooLarge(InvalidJob):
    """The payload's JSON is over ``JQS_MAX_PAYLOAD_BYTES`` (the REST API answers 413)."""


@dataclass
class JobSpec:
    """One job to submit; the Python form of ``POST /api/v1/jobs``'s body."""

    type: str
    payload: Any = field(default_factory=dict)
    name: str = ""
    queue: str = "default"
    priority: int = 0
    schedule_at: datetime | str | None = None
    delay: float | str | None = None
    retry: dict[str, Any] | None = None
    timeout: float | str | None = None
    idempotency_key: str | None = None
    group: str | None = None
    unique_for: float | str | None = None
    unique_key: str | None = None
    unique_until: str | None = None
    expires_at: datetime | str | None = None
    expires_in: float | str | None = None
    depends_on: list[Any] | None = None  # parent job ids (jobs.dependencies); a workflow's refs too
    on_parent_failure: str | None = None  # "cancel" (default) or "run"
    batch: str | None = None  # the id of an open batch the job joins (jobs.batches)


@dataclass(frozen=True)
class ValidJob:
    """A checked submission: the column values of its row."""

    fields: dict[str, Any]
    due: datetime | None
    payload_json: str = "{}"
    unique: Uniqueness | None = None


def _duration(name: str, value: Any, *, allow_zero: bool = True) -> float:
    try:
        seconds = parse_duration(value)
    except DurationError as exc:
        raise InvalidJob(name, str(exc)) from None
    if seconds > MAX_DURATION:
        raise InvalidJob(name, f"{value!r} is out of range")
    if not allow_zero and seconds <= 0:
        raise InvalidJob(name, f"{value!r}: must be above zero")
    return seconds


def _when(value: Any, name: str = "schedule_at") -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            parsed = parse_datetime(value.strip())
        except ValueError:
            parsed = None
        if parsed is None:
            raise InvalidJob(name, f"{value!r} is not an RFC 3339 date-time (e.g. 2026-01-02T15:04:05Z)")
        moment = parsed
    else:
        raise InvalidJob(name, f"{value!r} is not an RFC 3339 date-time")
    if timezone.is_naive(moment):
        raise InvalidJob(name, f"{value!r} has no time zone (add Z or an offset)")
    try:
        # In UTC, as stored and as read back: a moment past year 9999 there could be written
        # but never read again.
        return moment.astimezone(UTC)
    except OverflowError:
        raise InvalidJob(name, f"{value!r} is out of range") from None


def is_queue_name(value: Any) -> bool:
    """True when ``value`` is a queue name as a whole (1-64 of A-Z a-z 0-9 _ . : -)."""
    return isinstance(value, str) and QUEUE_NAME.fullmatch(value) is not None


def check_payload(payload: Any) -> str:
    """Refuse a payload that is not a JSON object or is too large; returns its JSON text."""
    if not isinstance(payload, dict):
        raise InvalidJob("payload", f"must be a JSON object, not {type(payload).__name__}")
    try:
        text = _ENCODE_PAYLOAD(payload)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidJob("payload", f"is not JSON: {exc}") from None
    if holds_nul(text):
        raise InvalidJob("payload", f"holds a NUL character ({JSON_NUL}), which the database cannot store")
    if JSON_SURROGATE in text:  # rare: a pair from a Python caller, a lone one, or a backslash before "ud"
        surrogate = _surrogate_in(payload)
        if surrogate is not None:
            raise InvalidJob("payload", f"holds a lone surrogate ({surrogate}), which is not Unicode text")
    limit = payload_limit()
    size = len(text)
    if size > limit and "\\u" in text:  # escapes (é is 6 characters here): measure the UTF-8 instead
        size = len(_UTF8_ENCODER.encode(payload).encode())
    if size > limit:
        raise PayloadTooLarge("payload", f"is {size} bytes of JSON; the limit is {limit} (JQS_MAX_PAYLOAD_BYTES)")
    return text


# JQS_MAX_PAYLOAD_BYTES: checked for every job of a batch, so read from the settings once (see the module).
payload_limit = read_once(lambda: int(settings.ZIPLINE.api.max_payload_bytes))


def holds_nul(json_text: str) -> bool:
    """True when JSON text written by :mod:`json` (ASCII only) encodes a NUL character."""
    return JSON_NUL in json_text and _JSON_NUL_ESCAPE.search(json_text) is not None


def _surrogate_in(value: Any) -> str | None:
    """The first surrogate code point in ``value``'s strings and keys, escaped, or None.

    Such a string is not Unicode text: neither PostgreSQL nor SQLite can store it, and UTF-8 cannot
    encode it.
    """
    if isinstance(value, str):
        if value.isascii():
            return None
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            return ascii(value[exc.start])[1:-1]
        return None
    if isinstance(value, dict):
        items: Any = (part for pair in value.items() for part in pair)
    elif isinstance(value, list | tuple):
        items = value
    else:
        return None
    for item in items:
        found = _surrogate_in(item)
        if found is not None:
            return found
    return None


def _unstorable(value: str) -> str | None:
    """Why no database can store ``value`` (a NUL character, a lone surrogate), or None."""
    if "\x00" in value:
        return "holds a NUL character (\\u0000), which the database cannot store"
    surrogate = _surrogate_in(value)
    return None if surrogate is None else f"holds a lone surrogate ({surrogate}), which is not Unicode text"


def storable(value: str) -> bool:
    """True when a database can store ``value``: no NUL character and no lone surrogate."""
    return _unstorable(value) is None


def check_text(field: str, value: str) -> None:
    """Refuse text no database can store, naming ``field``."""
    reason = _unstorable(value)
    if reason is not None:
        raise InvalidJob(field, reason)


def _integer(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidJob(name, f"{value!r} is not a whole number")
    if not low <= value <= high:
        raise InvalidJob(name, f"{value} is out of range ({low} to {high})")
    return int(value)  # an int already: int() only tells mypy --strict so


def _retry_fields(job_type: str, retry: Any) -> dict[str, Any]:
    defaults = retry_defaults(registry.get(job_type))
    if retry is None:
        return dict(_default_retry_fields(defaults))
    return _merged_retry_fields(defaults, retry)


@functools.lru_cache(maxsize=256)
def _default_retry_fields(defaults: RetryDefaults) -> tuple[tuple[str, Any], ...]:
    """A processor's retry fields when the job gives none: the same for every job of its type."""
    return tuple(_merged_retry_fields(defaults, {}).items())


def _merged_retry_fields(defaults: RetryDefaults, retry: Any) -> dict[str, Any]:
    if not isinstance(retry, dict):
        raise InvalidJob("retry", "must be an object with max_retries, backoff, initial_delay, max_delay, jitter")
    unknown = set(retry) - RETRY_KEYS
    if unknown:
        raise InvalidJob(f"retry.{sorted(unknown)[0]}", "unknown field")
    fields: dict[str, Any] = {}

    def given(key: str) -> Any:
        """The job's value, else (absent or null) the processor's default."""
        value = retry.get(key)
        return getattr(defaults, key) if value is None else value

    max_retries = given("max_retries")
    if max_retries is not None:
        fields["max_retries"] = _integer("retry.max_retries", max_retries, 0, MAX_RETRIES_LIMIT)
    backoff = given("backoff")
    if backoff is not None:
        if backoff not in Backoff.values:
            raise InvalidJob("retry.backoff", f"{backoff!r} is not one of {', '.join(Backoff.values)}")
        fields["backoff"] = backoff
    for key in ("initial_delay", "max_delay"):
        value = given(key)
        if value is not None:
            fields[key] = _duration(f"retry.{key}", value)
    jitter = given("jitter")
    if jitter is not None:
        if not isinstance(jitter, bool):
            raise InvalidJob("retry.jitter", f"{jitter!r} is not true or false")
        fields["jitter"] = jitter
    if fields.get("initial_delay", 1.0) > fields.get("max_delay", 3600.0):
        raise InvalidJob("retry.initial_delay", "is longer than retry.max_delay")
    return fields


def _job_type(value: Any) -> str:
    """The job's type: a registered processor's name."""
    if value is None:
        raise InvalidJob("type", "is required")
    if not isinstance(value, str) or not value:
        raise InvalidJob("type", f"{value!r} is not a job type: give a registered type's name")
    if value not in registry:
        known = ", ".join(registry.types()) or "none"
        raise InvalidJob("type", f"unknown job type {value!r} (registered: {known})")
    return value


def _idempotency_key(key: Any) -> str:
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        raise InvalidJob("idempotency_key", f"must be a string of 1 to {MAX_IDEMPOTENCY_KEY} characters")
    check_text("idempotency_key", key)
    return key


def _due(spec: JobSpec, now: datetime) -> datetime | None:
    """When the job becomes due, or None for a job to run now (a due time not after ``now`` included)."""
    if spec.schedule_at is not None and spec.delay is not None:
        raise InvalidJob("delay", "give schedule_at or delay, not both")
    if spec.schedule_at is not None:
        due = _when(spec.schedule_at)
    elif spec.delay is not None:
        due = now + timedelta(seconds=_duration("delay", spec.delay))
    else:
        return None
    return due if due > now else None


def _group(value: Any) -> str:
    try:
        return check_group(value)
    except InvalidLimit as exc:
        raise InvalidJob(exc.field, exc.message) from None


def _check_name_and_queue(spec: JobSpec) -> None:
    if not isinstance(spec.name, str) or len(spec.name) > MAX_NAME:
        raise InvalidJob("name", f"must be a string of at most {MAX_NAME} characters")
    check_text("name", spec.name)
    if not is_queue_name(spec.queue):
        raise InvalidJob("queue", f"{spec.queue!r} is not a queue name (1-64 of A-Z a-z 0-9 _ . : -)")


def validate(spec: JobSpec, now: datetime | None = None) -> ValidJob:
    """Check every field of ``spec``; raise :class:`InvalidJob` at the first bad one."""
    now = now or timezone.now()
    job_type = _job_type(spec.type)
    payload_json = check_payload(spec.payload)
    _check_name_and_queue(spec)
    priority = _integer("priority", spec.priority, PRIORITY_MIN, PRIORITY_MAX)
    fields: dict[str, Any] = {
        "type": job_type,
        "payload": spec.payload,
        "name": spec.name,
        "queue": spec.queue,
        "priority": priority,
        **_retry_fields(job_type, spec.retry),
    }
    if spec.timeout is not None:
        fields["timeout"] = _duration("timeout", spec.timeout, allow_zero=False)
    if spec.idempotency_key is not None:
        fields["idempotency_key"] = _idempotency_key(spec.idempotency_key)
    if spec.group:
        fields["group"] = _group(spec.group)
    due = _due(spec, now)
    if due is not None:
        fields["status"] = target(Verb.SCHEDULE)
        fields["schedule_at"] = due
    expires_at = _expiry(spec, now)
    if expires_at is not None:
        fields["expires_at"] = expires_at
    unique = _uniqueness(spec)
    if unique is not None:
        fields["unique_key"] = unique.key
    # Last: the job's own fields are judged first, whatever its processor thinks of the payload.
    try:
        payloads.check_payload(registry.get(job_type), spec.payload)
    except PayloadError as exc:
        raise InvalidJob(f"payload.{exc.field}" if exc.field else "payload", exc.message) from None
    return ValidJob(fields=fields, due=due, payload_json=payload_json, unique=unique)


def _expiry(spec: JobSpec, now: datetime) -> datetime | None:
    """When the job expires if not started (``expires_at`` or ``expires_in``), or None."""
    if spec.expires_at is not None and spec.expires_in is not None:
        raise InvalidJob("expires_in", "give expires_at or expires_in, not both")
    if spec.expires_in is not None:
        return now + timedelta(seconds=_duration("expires_in", spec.expires_in, allow_zero=False))
    if spec.expires_at is None:
        return None
    moment = _when(spec.expires_at, "expires_at")
    if moment <= now:
        raise InvalidJob("expires_at", f"{spec.expires_at!s} is in the past: the job could never run")
    return moment


def _uniqueness(spec: JobSpec) -> Uniqueness | None:
    """A unique job's terms (:mod:`jobs.unique_terms`), or None when ``unique_for`` is not given."""
    if spec.unique_for is None:
        for name in ("unique_key", "unique_until"):
            if getattr(spec, name) is not None:
                raise InvalidJob(name, "needs unique_for (how long the job is unique)")
        return None
    window = _duration("unique_for", spec.unique_for, allow_zero=False)
    limit, setting = retention_limit()
    if window > limit:
        raise InvalidJob(
            "unique_for",
            f"{spec.unique_for!r} is longer than the retention of finished jobs ({format_duration(limit)}, {setting})",
        )
    until = "finish" if spec.unique_until is None else spec.unique_until
    if until not in UNIQUE_UNTIL:
        raise InvalidJob("unique_until", f"{until!r} is not one of start, finish")
    key = spec.unique_key
    if key is None:
        key = default_unique_key(spec.type, spec.queue, spec.payload)
    elif not isinstance(key, str) or not 1 <= len(key) <= MAX_UNIQUE_KEY:
        raise InvalidJob("unique_key", f"must be a string of 1 to {MAX_UNIQUE_KEY} characters")
    check_text("unique_key", key)
    return Uniqueness(key=key, until=until, window=window)
