"""Routes of the dashboard, mounted at ``dashboard/`` by ``zipline_site/urls.py`` (namespace ``dashboard``).

Every answer is ``Cache-Control: no-store`` (``never_cache``, as the admin's): pages show payloads and
errors that no shared or browser cache should keep.
"""

from __future__ import annotations

from django.urls import URLPattern, path
from django.views.decorators.cache import never_cache

from jobs.dashboard import job_sets, views

app_name = "dashboard"

_routes = [
    path("", views.index, name="index"),
    path("fragments/<str:section>/", views.fragment, name="fragment"),
    path("jobs/", views.job_search, name="jobs"),
    path("jobs/<uuid:job_id>/", views.job_detail, name="job"),
    path("jobs/<uuid:job_id>/fragment/", views.job_fragment, name="job-fragment"),
    path("jobs/<uuid:job_id>/cancel/", views.job_action, {"action": "cancel"}, name="job-cancel"),
    path("jobs/<uuid:job_id>/retry/", views.job_action, {"action": "retry"}, name="job-retry"),
    path("jobs/<uuid:job_id>/run-now/", views.job_action, {"action": "run-now"}, name="job-run-now"),
    *(path(f"{slug}/", views.job_set_page, {"slug": slug}, name=slug) for slug in job_sets.SETS),
    *(path(f"{slug}/bulk/", views.job_set_bulk, {"slug": slug}, name=f"{slug}-bulk") for slug in job_sets.SETS),
    path("queues/<str:name>/pause/", views.queue_action, {"paused": True}, name="queue-pause"),
    path("queues/<str:name>/resume/", views.queue_action, {"paused": False}, name="queue-resume"),
]


def _uncached(route: URLPattern) -> URLPattern:
    route.callback = never_cache(route.callback)
    return route


urlpatterns = [_uncached(route) for route in _routes]
