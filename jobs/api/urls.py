"""Routes of the REST API. ``zipline_site/urls.py`` mounts :data:`urlpatterns` at ``api/v1/``,
:data:`docs_urlpatterns` at ``api/`` and :data:`health_urlpatterns` at the root."""

from __future__ import annotations

from django.urls import path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from jobs.api import docs_assets, views
from jobs.api.auth import api_open


class QueueNameConverter:
    """A queue name in a path; anything else matches no route (404)."""

    regex = r"[A-Za-z0-9_.:-]{1,64}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(QueueNameConverter, "queue")

urlpatterns = [
    path("", views.ApiIndexView.as_view(), name="api-index"),
    path("jobs", views.JobCollectionView.as_view(), name="api-jobs"),
    path("jobs/batch", views.JobBatchView.as_view(), name="api-jobs-batch"),
    path("workflows", views.WorkflowCollectionView.as_view(), name="api-workflows"),
    path("workflows/<str:workflow_id>", views.WorkflowDetailView.as_view(), name="api-workflow"),
    path("batches", views.BatchCollectionView.as_view(), name="api-batches"),
    path("batches/<str:batch_id>", views.BatchDetailView.as_view(), name="api-batch"),
    path("batches/<str:batch_id>/close", views.BatchCloseView.as_view(), name="api-batch-close"),
    path("batches/<str:batch_id>/cancel", views.BatchCancelView.as_view(), name="api-batch-cancel"),
    path("jobs/<str:job_id>", views.JobDetailView.as_view(), name="api-job"),
    path("jobs/<str:job_id>/cancel", views.JobCancelView.as_view(), name="api-job-cancel"),
    path("jobs/<str:job_id>/retry", views.JobRetryView.as_view(), name="api-job-retry"),
    path("queues/<queue:queue_name>", views.QueueLimitsView.as_view(), name="api-queue"),
    path("queues/<queue:queue_name>/stats", views.QueueStatsView.as_view(), name="api-queue-stats"),
    path("queues/<queue:queue_name>/pause", views.QueuePauseView.as_view(), name="api-queue-pause"),
    path("queues/<queue:queue_name>/resume", views.QueueResumeView.as_view(), name="api-queue-resume"),
    path("stats", views.SystemStatsView.as_view(), name="api-stats"),
    path("workers/stats", views.WorkerStatsView.as_view(), name="api-worker-stats"),
]

docs_urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file: the page runs no inline script.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path(
        "redoc/",
        SpectacularRedocView.as_view(url_name="api-schema", template_name="api/redoc.html"),
        name="api-redoc",
    ),
    path("redoc/redoc.standalone.js", docs_assets.redoc_js, name="api-redoc-js"),
]

health_urlpatterns = [
    path("health", views.HealthView.as_view(), name="health"),
]

# Say so in the log at start-up (the URLconf loads then) when the API is open.
api_open()
