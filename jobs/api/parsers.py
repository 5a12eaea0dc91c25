"""The API's only parser: JSON, with the body size and nesting depth checked before anything else.

DRF reads the request stream itself, so Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE`` never applies to it;
this parser enforces that limit (or a view's own ``max_body_bytes``) and answers 413. NaN, Infinity
and nesting deeper than :data:`MAX_DEPTH` are refused as malformed (400), so nothing downstream (the
JSON encoder, PostgreSQL's jsonb) can fail on them later.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from jobs.api.errors import payload_too_large

MAX_DEPTH = 100


def body_limit(parser_context: Mapping[str, Any] | None) -> int:
    view = (parser_context or {}).get("view")
    limit = getattr(view, "max_body_bytes", None)
    return int(limit or settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 2_621_440)


def largest_body_limit() -> int:
    """The largest body any view accepts (the batch submission's): an ASGI front end reads no more."""
    from jobs.api.views import BATCH_MAX_BODY_BYTES

    return max(int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 2_621_440), BATCH_MAX_BODY_BYTES)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _too_deep(data: Any, limit: int) -> bool:
    """True when containers nest deeper than ``limit`` (level by level: no recursion on hostile input)."""
    level, depth = [data], 1
    while level:
        if depth > limit:
            return True
        deeper: list[Any] = []
        for node in level:
            deeper += [v for v in (node.values() if type(node) is dict else node) if type(v) is dict or type(v) is list]
        level, depth = deeper, depth + 1
    return False


class LimitedJSONParser(BaseParser):
    media_type = "application/json"

    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        limit = body_limit(parser_context)
        request = (parser_context or {}).get("request")
        meta = getattr(request, "META", {}) if request is not None else {}
        try:
            declared = int(meta.get("CONTENT_LENGTH") or 0)
        except (TypeError, ValueError):
            declared = 0
        if declared > limit:
            raise payload_too_large(limit)
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise payload_too_large(limit)
        try:
            data = json.loads(raw, parse_constant=_refuse_constant)
        except RecursionError:
            raise ParseError(f"nested deeper than {MAX_DEPTH} levels") from None
        except ValueError as exc:  # also UnicodeDecodeError
            raise ParseError(str(exc)) from None
        if (
            isinstance(data, (dict, list))
            and raw.count(b"[") + raw.count(b"{") > MAX_DEPTH
            and _too_deep(data, MAX_DEPTH)
        ):
            raise ParseError(f"nested deeper than {MAX_DEPTH} levels")
        return data
