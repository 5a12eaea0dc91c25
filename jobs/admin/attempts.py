"""A job's attempts on its admin page: read-only, one row per attempt."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from jobs.admin.display import PRE_CLASS
from jobs.dashboard import formats
from jobs.models import JobAttempt


class JobAttemptInline(admin.TabularInline):
    """Every attempt of the job, read-only: when, where, how long, and how it ended."""

    model = JobAttempt
    extra = 0
    can_delete = False
    ordering = ("number",)
    fields = ("number_display", "outcome", "started_at", "finished_at", "duration_display", "worker", "error_display")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("jobs.view_job") or request.user.has_perm("jobs.change_job")

    @admin.display(description="number")
    def number_display(self, attempt: JobAttempt) -> str:
        """Numbers go on through a manual retry; its first attempt says it followed one."""
        return f"{attempt.number} (after a manual retry)" if attempt.after_manual_retry else str(attempt.number)

    @admin.display(description="duration")
    def duration_display(self, attempt: JobAttempt) -> str:
        return formats.seconds(attempt.duration)

    @admin.display(description="error")
    def error_display(self, attempt: JobAttempt) -> SafeString | str:
        if not attempt.error:
            return "-"
        first = attempt.error.strip().splitlines()[0] if attempt.error.strip() else attempt.error
        if not attempt.traceback:
            return first
        return format_html(
            '<details><summary>{}</summary><pre class="{}">{}</pre></details>', first, PRE_CLASS, attempt.traceback
        )
