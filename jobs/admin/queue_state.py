"""Paused or not, and the limits, per queue, in the admin. Saving goes through
:func:`jobs.service.set_paused` (the row, then Redis) and :func:`jobs.service.update_queue_limits`
(the function behind ``PATCH /api/v1/queues/{name}``, so the same values are refused, next to the field)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from jobs import service
from jobs.dashboard.formats import plural
from jobs.dashboard.limits_form import LIMIT_FIELDS, check_limits, limit_changes
from jobs.dashboard.panels import limit_rows
from jobs.models import QueueState


class QueueStateForm(forms.ModelForm):
    class Meta:
        model = QueueState
        fields = ("name", "paused", *LIMIT_FIELDS)

    def clean_name(self) -> str:
        name = str(self.cleaned_data["name"])
        try:
            return service.check_queue_name(name)
        except service.InvalidJob as exc:
            raise forms.ValidationError(exc.message) from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        check_limits(self)
        return cleaned


@admin.register(QueueState)
class QueueStateAdmin(admin.ModelAdmin):
    """Paused or not, per queue. Saving goes through :func:`jobs.service.set_paused` (row, then Redis)."""

    form = QueueStateForm
    list_display = ("name", "paused", "limits_set", "updated_at")
    list_filter = ("paused",)
    search_fields = ("name",)
    ordering = ("name",)
    actions = ("pause_queues", "resume_queues")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ("name", "held_now", "updated_at") if obj is not None else ("updated_at",)

    @admin.display(description="limits set")
    def limits_set(self, obj: QueueState) -> str:
        """The row's own limits (the configuration's defaults apply to the others)."""
        own = [f"{field} {getattr(obj, field)}" for field in LIMIT_FIELDS if getattr(obj, field) not in (None, "")]
        return ", ".join(own) or "-"

    @admin.display(description="what the limits hold now")
    def held_now(self, obj: QueueState) -> str:
        """Each limit in force, the jobs running against it and the jobs it holds (Redis, read now)."""
        try:
            rows = limit_rows(service.queue_limits(obj.name)["flow"])
        except service.BrokerUnavailable as exc:
            return f"unknown: Redis did not answer ({exc})"
        if not rows:
            return "no limit in force"
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((r["label"], r["value"], "-" if r["running"] is None else r["running"], r["held_jobs"]) for r in rows),
        )
        head = "<tr><th>limit</th><th>in force</th><th>running</th><th>held</th></tr>"
        return format_html('<table data-testid="held-now">{}{}</table>', mark_safe(head), body)  # noqa: S308

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a deleted row would leave a paused flag in Redis that nothing shows

    def save_model(self, request: HttpRequest, obj: QueueState, form: Any, change: bool) -> None:
        self._set(request, obj.name, obj.paused)
        service.update_queue_limits(obj.name, limit_changes(form.cleaned_data))
        saved = QueueState.objects.get(name=obj.name)
        obj.pk, obj.updated_at = saved.pk, saved.updated_at

    def _set(self, request: HttpRequest, name: str, paused: bool) -> None:
        try:
            service.set_paused(name, paused)
        except service.BrokerUnavailable as exc:
            # The row is saved; the scheduler's reconciler makes Redis follow it.
            self.message_user(request, f"{name}: saved, but Redis did not answer ({exc}).", messages.WARNING)

    @admin.action(permissions=["change"], description="Pause selected queues")
    def pause_queues(self, request: HttpRequest, queryset: QuerySet[QueueState]) -> None:
        names = list(queryset.values_list("name", flat=True))
        for name in names:
            self._set(request, name, True)
        self.message_user(request, f"Paused {plural(len(names), 'queue')}: {', '.join(names)}.", messages.SUCCESS)

    @admin.action(permissions=["change"], description="Resume selected queues")
    def resume_queues(self, request: HttpRequest, queryset: QuerySet[QueueState]) -> None:
        names = list(queryset.values_list("name", flat=True))
        for name in names:
            self._set(request, name, False)
        self.message_user(request, f"Resumed {plural(len(names), 'queue')}: {', '.join(names)}.", messages.SUCCESS)
