"""The form an operator edits a queue's limits with, in the dashboard and in the admin.

Its values go to :func:`jobs.service.update_queue_limits`, the function behind ``PATCH
/api/v1/queues/{name}``, so the three accept and refuse the same values; a refusal is shown next to
the field it names. An empty field is the configuration's default (the API's null).
"""

from __future__ import annotations

from typing import Any

from django import forms

from jobs import service

#: The limits these forms edit, in the API's names (groups' weights are set through the API).
LIMIT_FIELDS = ("concurrency", "rate_limit", "rate_burst", "group_concurrency", "group_rate_limit", "group_rate_burst")
RATE_HELP = '"100/s", "1000/m" or "50000/h"; empty: the default'
COUNT_HELP = "a whole number from 1; empty: the default"


def _count(label: str) -> forms.IntegerField:
    widget = forms.NumberInput(attrs={"min": 1, "inputmode": "numeric"})
    return forms.IntegerField(label=label, required=False, help_text=COUNT_HELP, widget=widget)


def _rate(label: str) -> forms.CharField:
    return forms.CharField(label=label, required=False, max_length=32, help_text=RATE_HELP)


def limit_changes(cleaned: dict[str, Any]) -> dict[str, Any]:
    """The service's form of the fields: every limit, an empty one as None (the default)."""
    return {field: cleaned.get(field) if cleaned.get(field) not in ("", None) else None for field in LIMIT_FIELDS}


def check_limits(form: forms.BaseForm) -> None:
    """Put the service's refusal (if any) next to the field it names."""
    if any(field in form.errors for field in LIMIT_FIELDS):
        return  # a field Django could not read already says so
    try:
        service.check_queue_limits(limit_changes(form.cleaned_data))
    except service.InvalidJob as exc:
        form.add_error(exc.field if exc.field in LIMIT_FIELDS else None, exc.message)


def initial_from(row: Any) -> dict[str, Any]:
    """The form's values from a queue's row (None: no row yet, so every limit is the default)."""
    return {field: getattr(row, field) for field in LIMIT_FIELDS} if row is not None else {}


class LimitsForm(forms.Form):
    """A queue's own limits (not the defaults in force), for :func:`jobs.service.update_queue_limits`."""

    concurrency = _count("Concurrency")
    rate_limit = _rate("Rate")
    rate_burst = _count("Burst")
    group_concurrency = _count("Group concurrency")
    group_rate_limit = _rate("Group rate")
    group_rate_burst = _count("Group burst")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        check_limits(self)
        return cleaned

    def changes(self) -> dict[str, Any]:
        return limit_changes(self.cleaned_data)
