"""The API's JSON renderer: DRF's, with a fallback for text that UTF-8 cannot carry.

Stored data never holds a lone surrogate (validation refuses it), but an error may quote the
request back: an unknown field named ``"\\ud800"``, say. UTF-8 cannot encode that character; JSON's
``\\uXXXX`` escapes can, so such an answer is written in ASCII instead of failing with a 500.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework.renderers import JSONRenderer


class _AsciiJSONRenderer(JSONRenderer):
    ensure_ascii = True


class SafeJSONRenderer(JSONRenderer):
    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Mapping[str, Any] | None = None
    ) -> bytes:
        try:
            return super().render(data, accepted_media_type, renderer_context)
        except UnicodeEncodeError:
            return _AsciiJSONRenderer().render(data, accepted_media_type, renderer_context)
