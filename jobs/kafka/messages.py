"""One Kafka message as a submission: the same JSON as ``POST /api/v1/jobs``' body, checked by the same code.

A message names no user, so its idempotency key lives in a scope of its own (:data:`KEY_SCOPE`). A message
that brings no key gets one from where it sits in Kafka (topic, partition, offset), in another scope
(:data:`OFFSET_SCOPE`): a message delivered again after a crash finds the job it made the first time.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from typing import Any

from jobs.api.parsers import MAX_DEPTH
from jobs.api.representations import spec_from_body
from jobs.validation import InvalidJob, JobSpec, PayloadTooLarge

#: The scope of the keys messages bring (``idempotency_key`` in the JSON).
KEY_SCOPE = "kafka"
#: The scope of the keys made from a message's place in Kafka.
OFFSET_SCOPE = "kafka:offset"
#: A topic longer than this is hashed in a key (keys hold 200 characters, topic names up to 249).
_TOPIC_IN_KEY = 150
_VALUE_CHARS = 200
_INDEX = re.compile(r"\[(\d+)\]")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def decode(value: bytes | None, limit: int) -> tuple[Any, JobSpec]:
    """The message's JSON and the JobSpec it asks for; :class:`InvalidJob` names what is wrong.

    ``limit`` bounds the whole message in bytes (REST's limit on one submission's body).
    """
    if value is None:
        raise InvalidJob("message", "has no value (a tombstone); expected a JSON object")
    if len(value) > limit:
        raise PayloadTooLarge("message", f"is {len(value)} bytes, over the limit of {limit}")
    try:
        data = json.loads(value, parse_constant=_refuse_constant)
    except RecursionError:
        raise InvalidJob("message", "is nested too deep") from None
    except ValueError as exc:  # also UnicodeDecodeError
        raise InvalidJob("message", f"is not JSON: {exc}") from None
    if _deeper_than(data, MAX_DEPTH):
        raise InvalidJob("message", f"is nested deeper than {MAX_DEPTH} levels")
    return data, spec_from_body(data)


def _deeper_than(data: Any, limit: int) -> bool:
    """True when containers nest deeper than ``limit``, as REST refuses them (level by level: no recursion)."""
    level, depth = [data], 0
    while level:
        depth += 1
        if depth > limit:
            return True
        level = [
            child
            for node in level
            if isinstance(node, (dict, list))
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, (dict, list))
        ]
    return False


def keyed(spec: JobSpec, topic: str, partition: int, offset: int) -> tuple[JobSpec, str]:
    """``spec`` with an idempotency key, and the key's scope: the message's own, or one from its place."""
    if spec.idempotency_key is not None:
        return spec, KEY_SCOPE
    name = topic if len(topic) <= _TOPIC_IN_KEY else "sha256:" + hashlib.sha256(topic.encode()).hexdigest()
    return replace(spec, idempotency_key=f"{name}/{partition}/{offset}"), OFFSET_SCOPE


def field_value(data: Any, field: str) -> str:
    """The value a refusal names (``retry.max_delay``, ``payload.items[2]``), as JSON text, or ``""``."""
    if field in ("message", "body"):
        return ""
    node = data
    for part in _INDEX.sub(r".\1", field).split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return ""
    text = json.dumps(node, ensure_ascii=False, default=str)
    return text if len(text) <= _VALUE_CHARS else text[: _VALUE_CHARS - 3] + "..."


def refusal_headers(error: InvalidJob, data: Any, source: str) -> list[tuple[str, bytes]]:
    """The dead-letter copy's headers: the field, its value, the reason, and where the message came from."""
    return [
        ("zipline-error-field", error.field.encode()),
        ("zipline-error-value", field_value(data, error.field).encode()),
        ("zipline-error", f"{error.field}: {error.message}".encode()),
        ("zipline-source", source.encode()),
    ]
