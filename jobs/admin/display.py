"""How the admin shows jobs: JSON and long text in scrollable blocks, status badges, refusals."""

from __future__ import annotations

import json
from typing import Any

from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

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
    """The status in its colour (zipline/admin.css: each at least 4.5:1 on the admin's background);
    ``waiting`` is shown as blocked, as everywhere."""
    label = "blocked" if status == "waiting" else status
    return format_html('<strong class="zl-status zl-status-{}">{}</strong>', status, label)


def describe_refusals(refused: list[tuple[Any, str]]) -> str:
    """``1a2b3c4d (completed), … and 3 more``: which jobs an action left alone, with their state."""
    named = ", ".join(f"{formats.short_id(pk)} ({why})" for pk, why in refused[:NAMED_IN_MESSAGE])
    rest = len(refused) - NAMED_IN_MESSAGE
    return named + (f" and {rest} more" if rest > 0 else "")


def _linked(rows: list[tuple[Any, str, str | None]]) -> SafeString:
    parts = [
        format_html('<a href="{}">{}</a> {}', reverse("admin:jobs_job_change", args=[pk]), label, status_badge(status))
        if status is not None
        else format_html("{} (deleted)", pk)
        for pk, label, status in rows
    ]
    return format_html_join(", ", "{}", ((part,) for part in parts))


def relations_html(relations: Any) -> SafeString:
    """A job's parents and children, each linked to its page with its status, its workflow and batch."""
    if not (relations.parents or relations.children or relations.workflow or relations.batch):
        return format_html('<span class="quiet">{}</span>', "none")
    lines = []
    if relations.parents:
        lines.append(format_html("parents: {}", _linked(relations.parents)))
    if relations.children:
        lines.append(format_html("children: {}", _linked(relations.children)))
    if relations.workflow is not None:
        url = reverse("dashboard:workflow", args=[relations.workflow.pk])
        lines.append(
            format_html('workflow: <a href="{}">{}</a>', url, relations.workflow.name or relations.workflow.pk)
        )
    if relations.batch is not None:
        url = reverse("admin:jobs_batch_change", args=[relations.batch.pk])
        lines.append(format_html('batch: <a href="{}">{}</a>', url, relations.batch.name or relations.batch.pk))
    return format_html_join(mark_safe("<br>"), "{}", ((line,) for line in lines))
