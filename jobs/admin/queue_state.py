"""Paused or not, per queue, in the admin. Saving goes through :func:`jobs.service.set_paused`
(the row, then Redis)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from jobs import service
from jobs.dashboard.formats import plural
from jobs.models import QueueState


class QueueStateForm(forms.ModelForm):
    class Meta:
        model = QueueState
        fields = ("name", "paused")

    def clean_name(self) -> str:
        name = str(self.cleaned_data["name"])
        try:
            return service.check_queue_name(name)
        except service.InvalidJob as exc:
            raise forms.ValidationError(exc.message) from None


@admin.register(QueueState)
class QueueStateAdmin(admin.ModelAdmin):
    """Paused or not, per queue. Saving goes through :func:`jobs.service.set_paused` (row, then Redis)."""

    form = QueueStateForm
    list_display = ("name", "paused", "updated_at")
    list_filter = ("paused",)
    search_fields = ("name",)
    ordering = ("name",)
    actions = ("pause_queues", "resume_queues")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ("name", "updated_at") if obj is not None else ("updated_at",)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a deleted row would leave a paused flag in Redis that nothing shows

    def save_model(self, request: HttpRequest, obj: QueueState, form: Any, change: bool) -> None:
        self._set(request, obj.name, obj.paused)
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
