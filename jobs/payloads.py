"""A processor's own check of its payload, run at submit: a bad payload is a 400 naming the field, not a
job that fails when a worker runs it.

A processor declares either or both, as attributes:

* ``payload_schema``: a JSON Schema (draft 2020-12) for the payload object, checked with ``jsonschema``;
* ``validate_payload(payload)``: a callable that raises :class:`jobs.registry.PayloadError` naming the
  field (the built-in types use the same function their ``process`` runs, so the two never disagree).

:func:`jobs.validation.validate` runs them, so the REST API, ``jobs.enqueue``/``enqueue_many`` and
schedules (API and admin form) all refuse the same payloads.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from jobs.registry import JobProcessor, PayloadError, PermanentError

if TYPE_CHECKING:  # jsonschema is imported when a schema is first used: most processes never need it
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

# id(schema) -> (schema, its compiled validator); the schema is kept so its id cannot be reused.
_COMPILED: dict[int, tuple[dict[str, Any], Draft202012Validator]] = {}


def check_schema(schema: Any) -> None:
    """Refuse a processor's ``payload_schema`` that is not a JSON Schema (at registration, not at submit)."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    if not isinstance(schema, dict):
        raise TypeError(f"payload_schema must be a JSON Schema object, not {type(schema).__name__}")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"payload_schema is not a valid JSON Schema: {exc.message}") from None


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    entry = _COMPILED.get(id(schema))
    if entry is None or entry[0] is not schema:
        from jsonschema import Draft202012Validator

        entry = (schema, Draft202012Validator(schema))
        _COMPILED[id(schema)] = entry
    return entry[1]


def _path(parts: Iterable[Any]) -> str:
    """``["headers", "X-A"]`` -> ``headers.X-A``; ``["items", 0]`` -> ``items[0]``."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _field(error: ValidationError) -> str:
    """The key a schema error is about; for a missing or unknown key, that key."""
    path = list(error.absolute_path)
    instance = error.instance
    if error.validator == "required" and isinstance(instance, dict):
        path += [next((name for name in error.validator_value if name not in instance), "")]
    elif error.validator == "additionalProperties" and isinstance(instance, dict):
        known = set((error.schema or {}).get("properties", {})) if isinstance(error.schema, dict) else set()
        path += [next((name for name in instance if name not in known), "")]
    return _path(part for part in path if part != "")


def check_payload(proc: JobProcessor, payload: dict[str, Any]) -> None:
    """Run the processor's declared checks; raise :class:`PayloadError` naming the field."""
    schema = getattr(proc, "payload_schema", None)
    if schema:
        from jsonschema.exceptions import best_match

        error = best_match(_validator(schema).iter_errors(payload))
        if error is not None:
            raise PayloadError(_field(error), error.message)
    validate = getattr(proc, "validate_payload", None)
    if validate is None:
        return
    try:
        validate(payload)
    except PayloadError:
        raise
    except (PermanentError, ValueError, TypeError) as exc:  # a validator that names no field
        raise PayloadError("", str(exc)) from None
