"""How the admin shows jobs: JSON and long text in scrollable blocks, status badges, refusals."""

from __future__ import annotations

import json
from typing import Any

from django.utils.html import format_html
from django.utils.safestring import SafeString

from jobs.dashboard import formats

#: How many refused job ids a message names before it says "and N more".
NAMED_IN_MESSAGE = 10
#: Long text (JSON, tracebacks) in a scrollable block; the classes are in zipline/admin.css (no inline
#: style: the admin's Content-Security-Policy allows none).
PRE_CLASS = "zl-pre"


def pretty_json(value: Any) -> SafeString:
    """JSON indented for reading, escaped, in a scrollable block."""
    if value is None:
        return format_html('<span class="quiet">{}</span>', "none")
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    return format_html('<pre class="{}">{}</pre>', PRE_CLASS, text)


def pre(text: str) -> SafeString:
    if not text:
        return format_html('<span class="quiet">{}</span>', "none")
    return format_html('<pre class="{}">{}</pre>', PRE_CLASS, text)


def status_badge(status: str) -> SafeString:
    """The status in its colour (zipline/admin.css: each at least 4.5:1 on the admin's background)."""
    return format_html('<strong class="zl-status zl-status-{}">{}</strong>', status, status)


def describe_refusals(refused: list[tuple[Any, str]]) -> str:
    """``1a2b3c4d (completed), … and 3 more``: which jobs an action left alone, with their state."""
    named = ", ".join(f"{formats.short_id(pk)} ({why})" for pk, why in refused[:NAMED_IN_MESSAGE])
    rest = len(refused) - NAMED_IN_MESSAGE
    return named + (f" and {rest} more" if rest > 0 else "")
