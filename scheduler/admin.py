"""Schedules in the Django admin: a bad cron expression, time zone or job template is shown on its field
(``Schedule.clean``); actions pause, resume and trigger now."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.safestring import SafeString

from jobs import masking
from jobs.admin import pretty_json
from scheduler import cron
from scheduler.models import Schedule

if TYPE_CHECKING:  # generic only in django-stubs: Django's ModelAdmin takes no [Model] at run time
    _ScheduleModelAdmin = admin.ModelAdmin[Schedule]
else:
    _ScheduleModelAdmin = admin.ModelAdmin


@admin.register(Schedule)
class ScheduleAdmin(_ScheduleModelAdmin):
    list_display = (
        "name",
        "cron",
        "timezone",
        "job_type",
        "queue",
        "enabled",
        "misfire_policy",
        "last_fire_at",
        "next_fire_at",
    )
    list_filter = ("enabled", "misfire_policy", "queue", "job_type")
    search_fields = ("name", "description", "job_type")
    readonly_fields = ("last_fire_at", "next_fire_at", "created_at", "updated_at", "masked_payload")
    actions = ("pause_schedules", "resume_schedules", "trigger_schedules")
    fieldsets = (
        (None, {"fields": ("name", "description", "enabled")}),
        ("When", {"fields": ("cron", "timezone", "misfire_policy", "misfire_grace", "last_fire_at", "next_fire_at")}),
        ("Job", {"fields": ("job_type", "payload", "queue", "priority", "retry", "timeout")}),
        ("Record", {"fields": ("created_at", "updated_at")}),
    )

    def get_fieldsets(self, request: HttpRequest, obj: Schedule | None = None) -> Any:
        """Staff who may only view a schedule see its payload's secrets masked, as on a job's page."""
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or masking.sees_template_secrets(request.user, "scheduler.change_schedule"):
            return fieldsets
        return [
            (name, {**options, "fields": ["masked_payload" if f == "payload" else f for f in options["fields"]]})
            for name, options in fieldsets
        ]

    @admin.display(description="payload")
    def masked_payload(self, schedule: Schedule) -> SafeString:
        return pretty_json(masking.masked(schedule.payload))

    @admin.action(description="Pause selected schedules")
    def pause_schedules(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        for schedule in queryset:
            cron.pause(schedule)
        self.message_user(request, f"Paused {queryset.count()} schedule(s).", messages.SUCCESS)

    @admin.action(description="Resume selected schedules")
    def resume_schedules(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        for schedule in queryset:
            cron.resume(schedule)
        self.message_user(request, f"Resumed {queryset.count()} schedule(s).", messages.SUCCESS)

    @admin.action(description="Trigger selected schedules now")
    def trigger_schedules(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        for schedule in queryset:
            try:
                job = cron.trigger(schedule)
            except cron.InvalidSchedule as exc:
                self.message_user(request, f"{schedule.name}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{schedule.name}: submitted job {job.pk}.", messages.SUCCESS)
