"""Who may open the dashboard: the admin's rule, so a page never shows more than the admin would.

Staff only (others are sent to the admin login), and reading jobs needs ``jobs.view_job`` (or
``jobs.change_job``, which implies it): a staff user without it gets 403, as on the admin's job page.
Each action checks its own permission on top (:mod:`jobs.dashboard.views`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse

from jobs.roles import VIEW_JOB, can_view_jobs

View = Callable[..., HttpResponse]


def wants_json(request: HttpRequest) -> bool:
    """A request from ``dashboard.js`` (which reads JSON answers), not a plain form or page load."""
    return request.headers.get("X-Requested-With") == "fetch"


def viewer_required(view: View) -> View:
    """Staff with the permission to view jobs; 403 (JSON to the page's script) for staff without it."""

    @wraps(view)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not can_view_jobs(request.user):
            message = f"You need the {VIEW_JOB} permission to use the dashboard."
            if wants_json(request):
                return JsonResponse({"ok": False, "message": message}, status=403)
            raise PermissionDenied(message)
        return view(request, *args, **kwargs)

    return staff_member_required(checked)
