"""Schedules in the Django admin: a bad cron expression, time zone or job template is shown on its field
(``Schedule.clean``); actions pause, resume and trigger now."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from scheduler import cron
from scheduler.models import Schedule


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
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
    readonly_fields = ("last_fire_at", "next_fire_at", "created_at", "updated_at")
    actions = ("pause_schedules", "resume_schedules", "trigger_schedules")
    fieldsets = (
        (None, {"fields": ("name", "description", "enabled")}),
        ("When", {"fields": ("cron", "timezone", "misfire_policy", "misfire_grace", "last_fire_at", "next_fire_at")}),
        ("Job", {"fields": ("job_type", "payload", "queue", "priority", "retry", "timeout")}),
        ("Record", {"fields": ("created_at", "updated_at")}),
    )

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
