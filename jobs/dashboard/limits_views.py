"""A queue's limits page in the dashboard: each limit in force with what runs against it and what it
holds now, and (for staff with ``jobs.change_queuestate``) the form that sets them through
:func:`jobs.service.update_queue_limits`, the function behind ``PATCH /api/v1/queues/{name}``."""

from __future__ import annotations

from typing import Any, cast

from django.contrib import messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from jobs import service
from jobs.dashboard import panels
from jobs.dashboard.access import viewer_required
from jobs.dashboard.limits_form import LimitsForm, initial_from
from jobs.models import QueueState
from jobs.roles import CHANGE_QUEUE


def _page(request: HttpRequest, name: str, form: LimitsForm, status: int = 200) -> HttpResponse:
    try:
        state: dict[str, Any] | None = service.queue_limits(name)
        redis_error = ""
    except service.BrokerUnavailable as exc:
        state, redis_error = None, str(exc)
    context = {
        "name": name,
        "form": form,
        "can_change": request.user.has_perm(CHANGE_QUEUE),
        "rows": panels.limit_rows(state["flow"]) if state else [],
        "flow": state["flow"] if state else None,
        "redis_error": redis_error,
    }
    return render(request, "dashboard/queue_limits.html", context, status=status)


@require_http_methods(["GET", "POST"])
@viewer_required
def queue_limits(request: HttpRequest, name: str) -> HttpResponse:
    """GET: the page; POST (CSRF, ``jobs.change_queuestate``): set the limits, or show why not next to the field."""
    try:
        service.check_queue_name(name)
    except service.InvalidJob:
        raise Http404(f"no queue {name!r}") from None
    if request.method == "GET":
        return _page(request, name, LimitsForm(initial=initial_from(QueueState.objects.filter(name=name).first())))
    if not request.user.has_perm(CHANGE_QUEUE):
        return HttpResponseForbidden(f"You need the {CHANGE_QUEUE} permission to change a queue's limits.")
    form = LimitsForm(request.POST)
    if not form.is_valid():
        return _page(request, name, form, status=400)
    try:
        service.update_queue_limits(name, form.changes())
    except service.InvalidJob as exc:  # the same check as the form's: only a race could get here
        form.add_error(None, exc.message)
        return _page(request, name, form, status=400)
    saved = QueueState.objects.get(name=name)
    LogEntry.objects.log_actions(
        cast(int, request.user.pk), [saved], CHANGE, "Changed the queue's limits (dashboard)", single_object=True
    )
    messages.success(request, f"Limits of queue {name} saved; every worker applies them within a second.")
    return redirect(reverse("dashboard:queue-limits", args=[name]))
