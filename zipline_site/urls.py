"""URL map: admin, REST API, OpenAPI, dashboard and health."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from jobs.api.urls import docs_urlpatterns, health_urlpatterns
from jobs.auth_failures import limited_login

urlpatterns = [
    path("", RedirectView.as_view(url="/dashboard/"), name="root"),
    path("admin/login/", limited_login(admin.site.login)),  # 429 after too many failed passwords
    path("admin/", admin.site.urls),
    path("api/v1/", include("jobs.api.urls")),
    path("api/v1/", include("scheduler.urls")),
    path("api/", include(docs_urlpatterns)),
    path("dashboard/", include("jobs.dashboard.urls")),
    *health_urlpatterns,
    # No /metrics here: the API's port is public. gunicorn's master serves the API's metrics on a port
    # of their own (zipline_site.api_metrics).
]

# JSON errors for /api/ and /health; Django's own pages elsewhere.
handler400 = "jobs.api.errors.handler400"
handler403 = "jobs.api.errors.handler403"
handler404 = "jobs.api.errors.handler404"
handler500 = "jobs.api.errors.handler500"
