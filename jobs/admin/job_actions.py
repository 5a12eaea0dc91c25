"""The job admin's bulk actions: cancel, retry, run now and delete, each through :mod:`jobs.service`,
so every change is a state-machine transition that also updates Redis. Each reports how many jobs it
changed and which it refused, and why, and leaves one history entry per changed job."""

from __future__ import annotations

from typing import Any, cast

from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.models import CHANGE, LogEntry
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from jobs import service
from jobs.admin.display import describe_refusals
from jobs.dashboard.formats import plural
from jobs.models import Job, JobQuerySet, Status


class JobActions(admin.ModelAdmin):
    """The actions of :class:`jobs.admin.job_admin.JobAdmin`, and its deletion."""

    def _apply(self, queryset: QuerySet[Job], action: str) -> tuple[list[Job], list[tuple[Any, str]]]:
        """Run ``action`` on every selected job; returns (changed jobs, [(id, why refused)])."""
        outcome = service.apply_each(action, queryset.order_by().values_list("pk", flat=True).iterator())
        return outcome.changed, list(outcome.refused)

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
        changed, refused = self._apply(queryset, "cancel")
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
        changed, refused = self._apply(queryset, "retry")
        self._audit(request, changed, "Retried")
        self._report(request, "Retried", "retry", len(changed), refused)

    @admin.action(permissions=["change"], description="Run selected jobs now (scheduled or retrying)")
    def run_jobs_now(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        changed, refused = self._apply(queryset, "run-now")
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
        service.delete_jobs(cast(JobQuerySet, queryset).not_running())

    def delete_model(self, request: HttpRequest, obj: Job) -> None:
        service.delete_jobs(Job.objects.filter(pk=obj.pk).not_running())
