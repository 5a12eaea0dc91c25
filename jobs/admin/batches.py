"""Batches in the admin: a list with their progress, and cancel (:func:`jobs.service.cancel_batch`).
View-only otherwise: a batch changes through the service, never by a saved form."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from jobs import service
from jobs.models import Batch


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    list_display = ("__str__", "created_at", "closed", "progress", "outcome", "finished_at", "dashboard_link")
    list_filter = ("closed", "outcome")
    search_fields = ("name",)
    ordering = ("-created_at",)
    actions = ("cancel_batches",)
    readonly_fields = ("id", "name", "created_at", "closed", "progress", "outcome", "finished_at", "callbacks")
    fields = readonly_fields
    show_facets = admin.ShowFacets.NEVER

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # its jobs would go with it

    @admin.display(description="ended / jobs")
    def progress(self, batch: Batch) -> str:
        counts = service.get_batch(batch.pk).counts
        ended = counts["completed"] + counts["failed"] + counts["cancelled"] + counts["expired"]
        return f"{ended} / {counts['total']}"

    @admin.display(description="dashboard")
    def dashboard_link(self, batch: Batch) -> SafeString:
        return format_html('<a href="{}">open</a>', reverse("dashboard:batch", args=[batch.pk]))

    @admin.action(
        description="Cancel the selected batches (and their jobs that have not ended)", permissions=["cancel"]
    )
    def cancel_batches(self, request: HttpRequest, queryset: QuerySet[Batch]) -> None:
        for batch in queryset:
            service.cancel_batch(batch.pk)
        count = queryset.count()
        self.message_user(request, f"Cancelled {count} batch{'' if count == 1 else 'es'}.", messages.SUCCESS)

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("jobs.change_job"))
