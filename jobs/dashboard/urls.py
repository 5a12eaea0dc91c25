"""Routes of the dashboard, mounted at ``dashboard/`` by ``zipline_site/urls.py`` (namespace ``dashboard``).

Every answer is ``Cache-Control: no-store`` (``never_cache``, as the admin's): pages show payloads and
errors that no shared or browser cache should keep.
"""

from __future__ import annotations

import uuid

from django.urls import URLPattern, path, register_converter
from django.views.decorators.cache import never_cache

from jobs.dashboard import job_sets, limits_views, views
from jobs.ids import parse_job_id

app_name = "dashboard"


class JobIdConverter:
    """A job id in a path (:func:`jobs.ids.parse_job_id`); text that spells none matches no route (404)."""

    regex = r"[^/]+"

    def to_python(self, value: str) -> uuid.UUID:
        pk = parse_job_id(value)
        if pk is None:
            raise ValueError(f"{value!r} is not a job id")
        return pk

    def to_url(self, value: object) -> str:
        return str(value)


register_converter(JobIdConverter, "job_id")

_routes = [
    path("", views.index, name="index"),
    path("fragments/<str:section>/", views.fragment, name="fragment"),
    path("jobs/", views.job_search, name="jobs"),
    path("jobs/<job_id:job_id>/", views.job_detail, name="job"),
    path("jobs/<job_id:job_id>/fragment/", views.job_fragment, name="job-fragment"),
    path("workflows/<job_id:workflow_id>/", views.workflow_detail, name="workflow"),
    path("batches/<job_id:batch_id>/", views.batch_detail, name="batch"),
    path("jobs/<job_id:job_id>/cancel/", views.job_action, {"action": "cancel"}, name="job-cancel"),
    path("jobs/<job_id:job_id>/retry/", views.job_action, {"action": "retry"}, name="job-retry"),
    path("jobs/<job_id:job_id>/run-now/", views.job_action, {"action": "run-now"}, name="job-run-now"),
    *(path(f"{slug}/", views.job_set_page, {"slug": slug}, name=slug) for slug in job_sets.SETS),
    *(path(f"{slug}/bulk/", views.job_set_bulk, {"slug": slug}, name=f"{slug}-bulk") for slug in job_sets.SETS),
    path("queues/<str:name>/pause/", views.queue_action, {"paused": True}, name="queue-pause"),
    path("queues/<str:name>/resume/", views.queue_action, {"paused": False}, name="queue-resume"),
    path("queues/<str:name>/limits/", limits_views.queue_limits, name="queue-limits"),
]


def _uncached(route: URLPattern) -> URLPattern:
    route.callback = never_cache(route.callback)
    return route


urlpatterns = [_uncached(route) for route in _routes]
