"""Jobs, queues and API tokens in the Django admin.

Status fields are read-only everywhere: the admin never saves a job (its page is view-only), and its
bulk actions go through :mod:`jobs.client`, so every change is a state-machine transition that also
updates Redis. Each action reports how many jobs it changed and which it refused, and why. The job
list stays fast on a table of millions: no full ``COUNT(*)`` (see :mod:`jobs.admin_paginator`), no
facet counts, no ``SELECT DISTINCT`` for the filters, and an id search that uses the primary key.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.models import CHANGE, LogEntry
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from jobs import client, masking, queues, tokens
from jobs.admin_paginator import EstimatedCountPaginator
from jobs.broker import BrokerUnavailable, get_broker
from jobs.dashboard import formats, search
from jobs.models import WAITING, ApiToken, Job, JobAttempt, JobQuerySet, QueueState, Status
from jobs.registry import registry
from jobs.states import TransitionError
from jobs.validation import InvalidJob

#: How many refused job ids a message names before it says "and N more".
NAMED_IN_MESSAGE = 10
#: Long text (JSON, tracebacks) in a scrollable block; the classes are in zipline/admin.css (no inline
#: style: the admin's Content-Security-Policy allows none).
PRE_CLASS = "zl-pre"


def plural(n: int, word: str = "job") -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


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


# -- filters that do not scan the table ---------------------------------------------------------------


class QueueFilter(admin.SimpleListFilter):
    """Queues known to Redis or with a saved state: no ``SELECT DISTINCT queue`` over every job."""

    title = "queue"
    parameter_name = "queue"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        names = set(QueueState.objects.values_list("name", flat=True))
        try:
            names |= get_broker().queue_names()
        except BrokerUnavailable:
            pass  # the saved ones are still listed
        if self.value():
            names.add(str(self.value()))
        return [(name, name) for name in sorted(names)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        return queryset.filter(queue=self.value()) if self.value() else queryset


class TypeFilter(admin.SimpleListFilter):
    """The registered job types (plus the one selected): no ``SELECT DISTINCT type`` either."""

    title = "type"
    parameter_name = "type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        names = set(registry.types())
        if self.value():
            names.add(str(self.value()))
        return [(name, name) for name in sorted(names)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        return queryset.filter(type=self.value()) if self.value() else queryset


# -- jobs ---------------------------------------------------------------------------------------------


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


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
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

    @admin.display(description="dashboard")
    def dashboard_link(self, job: Job) -> SafeString:
        url = reverse("dashboard:job", args=[job.pk])
        return format_html('<a href="{}">Open this job in the dashboard (cancel, retry)</a>', url)

    # -- actions ---------------------------------------------------------------------------------------

    def _apply(self, queryset: QuerySet[Job], change: Callable[[Any], Job]) -> tuple[list[Job], list[tuple[Any, str]]]:
        """Run ``change`` on every selected job; returns (changed jobs, [(id, why refused)])."""
        changed: list[Job] = []
        refused: list[tuple[Any, str]] = []
        for pk in queryset.order_by().values_list("pk", flat=True).iterator():
            try:
                changed.append(change(pk))
            except TransitionError as exc:
                refused.append((pk, str(exc.current)))
            except Job.DoesNotExist:
                refused.append((pk, "deleted"))
        return changed, refused

    def _audit(self, request: HttpRequest, jobs: list[Job], what: str) -> None:
        """One history entry per changed job (the job page's *History*: who did what, when)."""
        if jobs:
            LogEntry.objects.log_actions(cast(int, request.user.pk), jobs, CHANGE, f"{what} (admin action)")

    def _report(
        self, request: HttpRequest, done: str, failed: str, changed: int, refused: list[tuple[Any, str]]
    ) -> None:
        if changed:
            self.message_user(request, f"{done} {plural(changed)}.", messages.SUCCESS)
        if refused:
            level = messages.WARNING if changed else messages.ERROR
            self.message_user(
                request, f"Could not {failed} {plural(len(refused))}: {describe_refusals(refused)}.", level
            )

    @admin.action(permissions=["change"], description="Cancel selected jobs")
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        changed, refused = self._apply(queryset, client.cancel)
        self._audit(request, changed, "Cancelled")
        stopping = [job for job in changed if job.status == Status.RUNNING]
        self._report(request, "Cancelled", "cancel", len(changed) - len(stopping), refused)
        if stopping:
            self.message_user(
                request,
                f"Asked {plural(len(stopping), 'running job')} to stop; they end cancelled when their code returns.",
                messages.SUCCESS,
            )

    @admin.action(permissions=["change"], description="Retry selected jobs (failed or cancelled)")
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        changed, refused = self._apply(queryset, client.retry)
        self._audit(request, changed, "Retried")
        self._report(request, "Retried", "retry", len(changed), refused)

    @admin.action(permissions=["change"], description="Run selected jobs now (scheduled or retrying)")
    def run_jobs_now(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        changed, refused = self._apply(queryset, client.run_now)
        self._audit(request, changed, "Made due now")
        self._report(request, "Made due now:", "run now", len(changed), refused)

    @admin.action(permissions=["delete"], description="Delete selected jobs")
    def delete_selected(self, request: HttpRequest, queryset: QuerySet[Job]) -> HttpResponse | None:
        """Django's confirm-then-delete, minus running jobs (a worker holds them: cancel them first)."""
        jobs = cast(JobQuerySet, queryset)  # the admin's queryset comes from Job.objects
        running = list(jobs.running().values_list("pk", flat=True))
        if running:
            refusals = [(pk, Status.RUNNING.value) for pk in running]
            self.message_user(
                request,
                f"Could not delete {plural(len(running))}: {describe_refusals(refusals)}; cancel running jobs first.",
                messages.WARNING if jobs.not_running().exists() else messages.ERROR,
            )
        deletable = jobs.not_running()
        if not deletable.exists():
            return None
        return django_delete_selected(self, request, deletable)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        deletable = cast(JobQuerySet, queryset).not_running()
        waiting = list(deletable.waiting().values_list("queue", "pk"))
        deletable.delete()
        transaction.on_commit(lambda: forget_in_redis(waiting))

    def delete_model(self, request: HttpRequest, obj: Job) -> None:
        waiting = [(obj.queue, obj.pk)] if obj.status in WAITING else []
        super().delete_model(request, obj)
        transaction.on_commit(lambda: forget_in_redis(waiting))


def forget_in_redis(jobs: Iterable[tuple[str, Any]]) -> None:
    """Take deleted waiting jobs' ids out of Redis (a worker would skip them anyway: no row)."""
    by_queue: dict[str, list[str]] = {}
    for queue, pk in jobs:
        by_queue.setdefault(queue, []).append(str(pk))
    try:
        broker = get_broker()
        for queue, ids in by_queue.items():
            broker.remove(queue, ids)
    except BrokerUnavailable:
        pass  # the reconciler drops ids without rows later


# -- queues ---------------------------------------------------------------------------------------------


class QueueStateForm(forms.ModelForm):
    class Meta:
        model = QueueState
        fields = ("name", "paused")

    def clean_name(self) -> str:
        name = str(self.cleaned_data["name"])
        try:
            return queues.check_name(name)
        except InvalidJob as exc:
            raise forms.ValidationError(exc.message) from None


@admin.register(QueueState)
class QueueStateAdmin(admin.ModelAdmin):
    """Paused or not, per queue. Saving goes through :func:`jobs.queues.set_paused` (row, then Redis)."""

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
            queues.set_paused(name, paused)
        except BrokerUnavailable as exc:
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


# -- API tokens -----------------------------------------------------------------------------------------


class ApiTokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ("user", "name")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens by their prefix only: the key is shown once, on the page that answers its creation, and
    the table holds only its hash (:mod:`jobs.tokens`)."""

    form = ApiTokenForm
    list_display = ("key_prefix", "user", "name", "created")
    list_select_related = ("user",)
    search_fields = ("user__username", "name", "prefix")
    readonly_fields = ("key_prefix", "created")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ("user", "name") if obj is None else ("user", "name", "key_prefix", "created")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return () if obj is None else ("user", "key_prefix", "created")

    @admin.display(description="key")
    def key_prefix(self, token: ApiToken) -> str:
        return f"{token.prefix}\u2026"

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        if change:
            obj.save(update_fields=["name"])
            return
        key = tokens.new_key()
        obj.prefix, obj.digest = tokens.prefix_of(key), tokens.digest(key)
        obj.save()
        obj._shown_key = key  # type: ignore[attr-defined]  # for response_add, this request only

    def response_add(self, request: HttpRequest, obj: ApiToken, post_url_continue: str | None = None) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": "API token created",
            "token": obj,
            "key": obj._shown_key,  # type: ignore[attr-defined]
            "opts": self.opts,
            "list_url": reverse("admin:jobs_apitoken_changelist"),
        }
        return TemplateResponse(request, "admin/jobs/apitoken/created.html", context)  # the admin adds no-store
