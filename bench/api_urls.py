"""ZipLine's URLs plus the floor for the API benchmark: a bare DRF create view (one INSERT, one Redis write)."""

from typing import Any

import redis
from django.conf import settings
from django.urls import path
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.models import Job
from zipline_site.urls import urlpatterns as zipline_urlpatterns

_redis = redis.Redis.from_url(settings.REDIS_URL)


class BareJobSerializer(serializers.ModelSerializer[Job]):
    class Meta:
        model = Job
        fields = ["id", "type", "payload", "queue", "priority", "status"]


class BareCreateView(APIView):
    """What any DRF job API costs at least: validate, one INSERT, one Redis write, a 201."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes: list[Any] = []

    def post(self, request: Request) -> Response:
        serializer = BareJobSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = serializer.save()
        _redis.rpush("zipbench-api:bare", str(job.pk))
        return Response(serializer.data, status=201)


urlpatterns = [path("bench/bare-jobs", BareCreateView.as_view()), *zipline_urlpatterns]
