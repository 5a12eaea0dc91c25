"""The job admin: a view-only page per job and a list that stays fast on a table of millions (no full
``COUNT(*)``, see :mod:`jobs.admin_paginator`; no facet counts; an id search on the primary key).
Changes are the bulk actions of :mod:`jobs.admin.job_actions`."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from jobs import masking, service
from jobs.admin.attempts import JobAttemptInline
from jobs.admin.display import pre, pretty_json, relations_html, status_badge
from jobs.admin.filters import QueueFilter, TypeFilter
from jobs.admin.job_actions import JobActions
from jobs.admin_paginator import EstimatedCountPaginator
from jobs.dashboard import formats, search
from jobs.models import Job, Status


@admin.register(Job)
class JobAdmin(JobActions):
    list_display = (
        "short_id",
        "name",
        "type",
        "queue",
        "status_display",
        "priority",
        "attempts_display",
        "created",
        "duration_display",
    )
    list_filter = ("status", QueueFilter, TypeFilter, ("created_at", admin.DateFieldListFilter))
    search_fields = ("name",)  # shows the search box; get_search_results does the work
    search_help_text = "A job id (or its first characters) or part of a name."
    ordering = ("-created_at",)
    list_per_page = 50
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    inlines = (JobAttemptInline,)
    actions = ("cancel_jobs", "retry_jobs", "run_jobs_now", "delete_selected")
    fieldsets = (
        (None, {"fields": ("id", "name", "type", "queue", "priority", "status_display", "cancel_requested")}),
        ("Payload and result", {"fields": ("payload_display", "result_display")}),
        ("Error", {"fields": ("error_display", "traceback_display")}),
        (
            "Timing",
            {"fields": ("created_at", "schedule_at", "started_at", "completed_at", "duration_display", "updated_at")},
        ),
        (
            "Attempts and retries",
            {"fields": ("attempts", "max_retries", "backoff", "initial_delay", "max_delay", "jitter", "timeout")},
        ),
        ("Dependencies", {"fields": ("relations_display",)}),
        ("More", {"fields": ("worker", "idempotency_key", "dashboard_link")}),
    )
    readonly_fields = (
        "id",
        "name",
        "type",
        "queue",
        "priority",
        "status_display",
        "cancel_requested",
        "payload_display",
        "result_display",
        "error_display",
        "traceback_display",
        "created_at",
        "schedule_at",
        "started_at",
        "completed_at",
        "duration_display",
        "updated_at",
        "attempts",
        "max_retries",
        "backoff",
        "initial_delay",
        "max_delay",
        "jitter",
        "timeout",
        "worker",
        "idempotency_key",
        "dashboard_link",
        "relations_display",
    )

    # -- permissions: the page is view-only; changes happen through the actions -----------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # jobs are submitted through the API or jobs.enqueue, which validate them

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Without an object this is the right to run the actions; with one it would be a form that saves
        # every field, status included, over whatever a worker wrote meanwhile: never.
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.status == Status.RUNNING:
            return False  # cancel it first
        return super().has_delete_permission(request, obj)

    # -- list ----------------------------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        queryset = super().get_queryset(request)
        match = request.resolver_match
        if match is not None and match.url_name == "jobs_job_changelist":
            queryset = queryset.defer("payload", "result", "error", "traceback")
        return queryset

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Job], search_term: str
    ) -> tuple[QuerySet[Job], bool]:
        return search.search(queryset, search_term), False

    @admin.display(description="id", ordering="id")
    def short_id(self, job: Job) -> str:
        return formats.short_id(job.pk)

    @admin.display(description="status", ordering="status")
    def status_display(self, job: Job) -> SafeString:
        badge = status_badge(job.status)
        if job.cancel_requested and job.status == Status.RUNNING:
            return format_html("{} (cancel requested)", badge)
        return badge

    @admin.display(description="attempts", ordering="attempts")
    def attempts_display(self, job: Job) -> str:
        return f"{job.attempts} / {job.max_retries + 1}"

    @admin.display(description="created", ordering="created_at")
    def created(self, job: Job) -> SafeString:
        local = timezone.localtime(job.created_at)
        return format_html('<span class="zl-nowrap">{}</span>', local.strftime("%Y-%m-%d %H:%M:%S"))

    @admin.display(description="duration")
    def duration_display(self, job: Job) -> str:
        return formats.seconds(job.duration)

    # -- detail --------------------------------------------------------------------------------------

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Job | None:
        job = super().get_object(request, object_id, from_field)
        if job is not None:
            job.shown_payload = masking.payload_for(request.user, job)
            job.shown_result = masking.result_for(request.user, job)
        return job

    @admin.display(description="payload")
    def payload_display(self, job: Job) -> SafeString:
        # Masked for this request's user by get_object; a job that did not come from it shows nothing secret.
        return pretty_json(job.shown_payload if hasattr(job, "shown_payload") else masking.masked(job.payload))

    @admin.display(description="result")
    def result_display(self, job: Job) -> SafeString:
        return pretty_json(job.shown_result if hasattr(job, "shown_result") else masking.masked(job.result))

    @admin.display(description="error")
    def error_display(self, job: Job) -> SafeString:
        return pre(job.error)

    @admin.display(description="traceback")
    def traceback_display(self, job: Job) -> SafeString:
        return pre(job.traceback)

    @admin.display(description="parents, children, workflow")
    def relations_display(self, job: Job) -> SafeString:
        return relations_html(service.job_relations(job))

    @admin.display(description="dashboard")
    def dashboard_link(self, job: Job) -> SafeString:
        url = reverse("dashboard:job", args=[job.pk])
        return format_html('<a href="{}">Open this job in the dashboard (cancel, retry)</a>', url)
