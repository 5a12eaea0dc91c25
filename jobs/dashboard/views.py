"""The operators' dashboard: thin views over :mod:`jobs.dashboard.panels` and :mod:`jobs.service`.

Pages are for staff with ``jobs.view_job`` (:mod:`jobs.dashboard.access`). Each refreshing part of
a page is also served alone as an HTML fragment, which ``dashboard.js`` fetches every few seconds and swaps in.
Actions are POSTs with a CSRF token and need the same Django permissions as over the API; they answer
JSON to the page's script and redirect with a message when a plain form was submitted.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseForbidden,
    JsonResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from jobs import masking, service
from jobs.dashboard import formats, job_sets, panels
from jobs.dashboard.access import viewer_required, wants_json
from jobs.lifecycle import Verb, can
from jobs.models import Job, Status
from jobs.roles import CHANGE_JOB, CHANGE_QUEUE, DELETE_JOB

SECTIONS: dict[str, Callable[[], Any]] = {
    "overview": panels.overview,
    "workers": panels.workers,
    "failures": panels.failures,
}


# -- pages ---------------------------------------------------------------------------------------------


@require_GET
@viewer_required
def index(request: HttpRequest) -> HttpResponse:
    context = {name: build() for name, build in SECTIONS.items()}
    return render(request, "dashboard/index.html", context)


@require_GET
@viewer_required
def fragment(request: HttpRequest, section: str) -> HttpResponse:
    """One refreshing part of the overview page, alone."""
    if section not in SECTIONS:
        raise Http404(f"no section {section!r}")
    return render(request, f"dashboard/_{section}.html", {section: SECTIONS[section]()})


@require_GET
@viewer_required
def job_search(request: HttpRequest) -> HttpResponse:
    term = request.GET.get("q", "").strip()
    status = request.GET.get("status", "")
    queue = request.GET.get("queue", "").strip()
    exact = service.find_job(term)
    if exact is not None:
        return redirect("dashboard:job", job_id=exact.pk)
    context = {
        "q": term,
        "status": status,
        "queue": queue,
        "statuses": service.STATUSES,
        "results": panels.find(term, status, queue),
        "limit": panels.SEARCH_RESULTS,
    }
    return render(request, "dashboard/jobs.html", context)


@require_GET
@viewer_required
def job_detail(request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
    return render(request, "dashboard/job.html", job_context(get_object_or_404(Job, pk=job_id), request.user))


@require_GET
@viewer_required
def job_fragment(request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
    return render(request, "dashboard/_job.html", job_context(get_object_or_404(Job, pk=job_id), request.user))


def job_context(job: Job, reader: Any) -> dict[str, Any]:
    """The job page's context; the payload as ``reader`` may see it (:mod:`jobs.masking`)."""
    attempts = list(job.attempt_set.order_by("finished_at", "pk"))
    for attempt in attempts:
        attempt.duration_text = formats.seconds(attempt.duration)  # type: ignore[attr-defined]
    return {
        "job": job,
        "short_id": formats.short_id(job.pk),
        "attempts": attempts,
        "payload_json": json.dumps(masking.payload_for(reader, job), indent=2, sort_keys=True, ensure_ascii=False),
        "result_json": None
        if job.result is None
        else json.dumps(masking.result_for(reader, job), indent=2, sort_keys=True, ensure_ascii=False),
        "can_cancel": can(Verb.CANCEL, job.status)
        or (can(Verb.REQUEST_CANCEL, job.status) and not job.cancel_requested),
        "can_retry": can(Verb.RETRY, job.status),
        "can_run_now": can(Verb.RUN_NOW, job.status),
        "duration": formats.seconds(job.duration),
        "relations": service.job_relations(job),
    }


@require_GET
@viewer_required
def batch_detail(request: HttpRequest, batch_id: uuid.UUID) -> HttpResponse:
    """A batch with a progress bar: its jobs ended out of all, by state, and its callbacks."""
    try:
        view = service.get_batch(batch_id)
    except service.BatchNotFound:
        raise Http404("no such batch") from None
    counts = view.counts
    ended = sum(counts[s] for s in ("completed", "failed", "cancelled", "expired"))
    shown = [(name, n) for name, n in counts.items() if name != "total" and n]
    context = {"view": view, "ended": ended, "counts": shown, "short_id": formats.short_id(view.batch.pk)}
    return render(request, "dashboard/batch.html", context)


#: Levels of indentation the workflow page draws at most (deeper jobs are drawn at this one).
MAX_INDENT = 20


@require_GET
@viewer_required
def workflow_detail(request: HttpRequest, workflow_id: uuid.UUID) -> HttpResponse:
    """A workflow as an indented list of its jobs with their states (the API's GET, on a page)."""
    try:
        view = service.get_workflow(workflow_id)
    except service.WorkflowNotFound:
        raise Http404("no such workflow") from None
    depth = service.depths(view)
    rows = [(job, depth[job.pk], range(min(depth[job.pk], MAX_INDENT))) for job in view.jobs]
    counts = [(name, n) for name, n in view.counts.items() if name != "total" and n]
    context = {"view": view, "rows": rows, "counts": counts, "short_id": formats.short_id(view.workflow.pk)}
    return render(request, "dashboard/workflow.html", context)


# -- actions -------------------------------------------------------------------------------------------


def _next_url(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return target
    return default


def _reply(request: HttpRequest, ok: bool, message: str, status: int, default_next: str) -> HttpResponse:
    if wants_json(request):
        return JsonResponse({"ok": ok, "message": message}, status=status)
    if status == 403:
        return HttpResponseForbidden(message)
    messages.add_message(request, messages.SUCCESS if ok else messages.ERROR, message)
    return redirect(_next_url(request, default_next))


def _done_message(action: str, job: Job) -> str:
    short = formats.short_id(job.pk)
    if action == "cancel" and job.status == Status.RUNNING:
        return f"Asked job {short} to stop; it ends cancelled when its code returns."
    return {
        "cancel": f"Cancelled job {short}.",
        "retry": f"Job {short} is queued to run again.",
        "run-now": f"Job {short} is due now.",
    }[action]


@require_POST
@viewer_required
def job_action(request: HttpRequest, job_id: uuid.UUID, action: str) -> HttpResponse:
    """Cancel, retry or run now, through the state machine (:mod:`jobs.service`)."""
    back = reverse("dashboard:job", args=[job_id])
    if not request.user.has_perm(CHANGE_JOB):
        return _reply(request, False, f"You need the {CHANGE_JOB} permission to {action} jobs.", 403, back)
    try:
        job = service.JOB_ACTIONS[action](job_id)
    except service.JobNotFound:
        return _reply(request, False, f"There is no job {job_id}.", 404, reverse("dashboard:index"))
    except service.TransitionError as exc:
        return _reply(request, False, str(exc), 409, back)
    message = _done_message(action, job)
    LogEntry.objects.log_actions(
        cast(int, request.user.pk), [job], CHANGE, f"{message} (dashboard)", single_object=True
    )
    return _reply(request, True, message, 200, back)


@require_POST
@viewer_required
def queue_action(request: HttpRequest, name: str, paused: bool) -> HttpResponse:
    """Pause or resume a queue (the row, then the Redis flag; see :func:`jobs.queues.set_paused`)."""
    home = reverse("dashboard:index")
    try:
        service.check_queue_name(name)
    except service.InvalidJob:
        raise Http404(f"no queue {name!r}") from None
    verb = "pause" if paused else "resume"
    if not request.user.has_perm(CHANGE_QUEUE):
        return _reply(request, False, f"You need the {CHANGE_QUEUE} permission to {verb} queues.", 403, home)
    try:
        service.set_paused(name, paused)
    except service.BrokerUnavailable as exc:
        return _reply(request, False, f"Saved, but Redis did not answer: {exc}", 503, home)
    return _reply(request, True, f"Queue {name} {'paused' if paused else 'resumed'}.", 200, home)


# -- Retries, Scheduled, Dead (Sidekiq's sets) -------------------------------------------------------------


def _job_set(slug: str) -> job_sets.JobSet:
    if slug not in job_sets.SETS:
        raise Http404(f"no job set {slug!r}")
    return job_sets.SETS[slug]


def _bad_input(exc: job_sets.BadInput) -> HttpResponse:
    return HttpResponseBadRequest(str(exc), content_type="text/plain; charset=utf-8")


@require_GET
@viewer_required
def job_set_page(request: HttpRequest, slug: str) -> HttpResponse:
    """One page of 50 jobs of a set, with its error column and the bulk actions."""
    job_set = _job_set(slug)
    try:
        queue = job_sets.check_queue(request.GET.get("queue", "").strip())
        found = job_sets.page(job_set, queue, request.GET.get("cursor", ""))
    except job_sets.BadInput as exc:
        return _bad_input(exc)
    context = {
        "job_set": job_set,
        "list_url": reverse(f"dashboard:{slug}"),
        "bulk_url": reverse(f"dashboard:{slug}-bulk"),
        "queue": queue,
        "page": found,
        "paged": bool(request.GET.get("cursor")),
        "can_act": request.user.has_perm(CHANGE_JOB),
        "can_delete": request.user.has_perm(CHANGE_JOB) and request.user.has_perm(DELETE_JOB),
    }
    return render(request, "dashboard/job_set.html", context)


@require_POST
@viewer_required
def job_set_bulk(request: HttpRequest, slug: str) -> HttpResponse:
    """Retry, run now, cancel or delete many jobs: a confirmation stating the count, then the change."""
    job_set = _job_set(slug)
    if not request.user.has_perm(CHANGE_JOB):  # before the input is read: a viewer learns nothing from it
        return HttpResponseForbidden(f"You need the {CHANGE_JOB} permission to act on jobs.")
    back = reverse(f"dashboard:{slug}")
    try:
        action = job_set.action(request.POST.get("action", ""))
        selection = job_sets.selection_from(job_set, request.POST)
    except job_sets.BadInput as exc:
        return _bad_input(exc)
    if selection.queue:
        back += f"?{urlencode({'queue': selection.queue})}"
    needed = [CHANGE_JOB, DELETE_JOB] if action is job_sets.DELETE else [CHANGE_JOB]
    missing = [perm for perm in needed if not request.user.has_perm(perm)]
    if missing:
        return HttpResponseForbidden(f"You need the {' and '.join(missing)} permission to {action.verb} jobs.")
    if not selection.every and not selection.ids:
        messages.error(request, f"Select the jobs to {action.verb} first.")
        return redirect(back)
    if request.POST.get("confirm") != "yes":
        return _confirm_bulk(request, slug, action, selection, back)
    outcome = job_sets.apply(action, selection)
    message = outcome.report(action, job_set)
    if outcome.changed:
        flag = DELETION if action is job_sets.DELETE else CHANGE
        LogEntry.objects.log_actions(cast(int, request.user.pk), outcome.changed, flag, f"{message} (dashboard)")
    messages.success(request, message)
    return redirect(back)


def _confirm_bulk(
    request: HttpRequest, slug: str, action: job_sets.Action, selection: job_sets.Selection, back: str
) -> HttpResponse:
    """The page that asks to confirm a bulk action, stating how many jobs it changes."""
    if selection.every and selection.as_of is None:
        selection = dataclasses.replace(selection, as_of=timezone.now())  # what the operator sees
    count = selection.count()
    context = {
        "job_set": selection.job_set,
        "action": action,
        "selection": selection,
        "count": count,
        "doing": min(count, job_sets.BULK_LIMIT),
        "back": back,
        "bulk_url": reverse(f"dashboard:{slug}-bulk"),
    }
    return render(request, "dashboard/job_set_confirm.html", context)
