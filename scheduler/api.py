"""REST API for recurring jobs: ``/api/v1/schedules``.

``GET/POST /schedules``, ``GET/PUT/PATCH/DELETE /schedules/{id}``, and ``POST /schedules/{id}/pause``,
``/resume`` and ``/trigger`` (submit the job now). The job template is nested like a job submission::

    {"name": "nightly-report", "cron": "0 3 * * *", "timezone": "Europe/Paris",
     "job": {"type": "send_email", "payload": {...}, "queue": "default", "priority": 0, "retry": {...}},
     "misfire_policy": "skip"}

A bad cron expression, time zone or template is a 400 naming the field. Authentication, pagination and
the error format are the project's REST_FRAMEWORK defaults; reading needs ``scheduler.view_schedule``, and
changes need ``scheduler.add_schedule``, ``change_schedule`` (also pause, resume, trigger) or
``delete_schedule``. Readers who may not change a schedule see its payload's secrets masked.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from jobs import masking
from scheduler import cron
from scheduler.models import Schedule

_TEMPLATE_FIELDS = ("job_type", "payload", "queue", "priority", "retry", "timeout")


class _RefusesUnknownFields(serializers.Serializer):
    """A field the API does not have is a 400 naming it, as for jobs: a typo must not pass silently.

    Read-only fields are known, so a client may send back what it read.
    """

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({unknown[0]: ["unknown field"]})
        return super().to_internal_value(data)


class JobTemplateSerializer(_RefusesUnknownFields):
    """The job each fire submits (the body of ``POST /api/v1/jobs`` without timing fields)."""

    type = serializers.CharField(source="job_type", max_length=100)
    payload = serializers.JSONField(required=False, default=dict)
    queue = serializers.CharField(required=False, default="default", max_length=64)
    priority = serializers.IntegerField(required=False, default=0)
    retry = serializers.JSONField(required=False, allow_null=True, default=None)
    timeout = serializers.FloatField(required=False, allow_null=True, default=None)


class ScheduleSerializer(_RefusesUnknownFields, serializers.ModelSerializer):
    job = JobTemplateSerializer(source="*")
    paused = serializers.BooleanField(read_only=True)

    class Meta:
        model = Schedule
        fields = (
            "id",
            "name",
            "description",
            "cron",
            "timezone",
            "job",
            "enabled",
            "paused",
            "misfire_policy",
            "misfire_grace",
            "last_fire_at",
            "next_fire_at",
            "created_at",
            "updated_at",
        )
        read_only_fields = ("id", "last_fire_at", "next_fire_at", "created_at", "updated_at")

    def to_representation(self, instance: Any) -> Any:
        """The template's secret-looking payload values are masked for readers who may not edit it."""
        data = super().to_representation(instance)
        request = self.context.get("request")
        if not masking.sees_template_secrets(getattr(request, "user", None), CHANGE_SCHEDULE):
            data["job"]["payload"] = masking.masked(data["job"]["payload"])
        return data

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        candidate = Schedule()
        if self.instance is not None:
            for f in Schedule._meta.concrete_fields:
                setattr(candidate, f.attname, getattr(self.instance, f.attname))
        for key, value in attrs.items():
            setattr(candidate, key, value)
        try:
            cron.check(candidate)
        except cron.InvalidSchedule as exc:
            raise serializers.ValidationError(_error(exc.field, exc.message)) from None
        return attrs


def _error(field: str, message: str) -> dict[str, Any]:
    """``job.retry.max_retries`` -> ``{"job": {"retry.max_retries": [message]}}``."""
    if field.startswith("job."):
        return {"job": {field.removeprefix("job."): [message]}}
    return {field: [message]}


ADD_SCHEDULE = "scheduler.add_schedule"
CHANGE_SCHEDULE = "scheduler.change_schedule"
DELETE_SCHEDULE = "scheduler.delete_schedule"
# Reading needs the view permission (or the change one, as in the admin); every change its own.
_ACTION_PERMISSIONS = {
    "list": "scheduler.view_schedule",
    "retrieve": "scheduler.view_schedule",
    "create": ADD_SCHEDULE,
    "update": CHANGE_SCHEDULE,
    "partial_update": CHANGE_SCHEDULE,
    "pause": CHANGE_SCHEDULE,
    "resume": CHANGE_SCHEDULE,
    "trigger": CHANGE_SCHEDULE,
    "destroy": DELETE_SCHEDULE,
}


class ScheduleViewSet(viewsets.ModelViewSet):
    queryset = Schedule.objects.all().order_by("name")
    serializer_class = ScheduleSerializer
    throttle_scopes = {"GET": "read", "POST": "write", "PUT": "write", "PATCH": "write", "DELETE": "write"}

    @property
    def required_permissions(self) -> dict[str, str]:
        """Read by the project's ``HasActionPermission``: the permission this request's action needs."""
        perm = _ACTION_PERMISSIONS.get(getattr(self, "action", None) or "")
        request = getattr(self, "request", None)
        return {request.method: perm} if perm and request is not None else {}

    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        schedule = cron.pause(self.get_object())
        return Response(self.get_serializer(schedule).data)

    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        schedule = cron.resume(self.get_object())
        return Response(self.get_serializer(schedule).data)

    @action(detail=True, methods=["post"])
    def trigger(self, request: Request, pk: str | None = None) -> Response:
        schedule = self.get_object()
        try:
            with transaction.atomic():
                job = cron.trigger(schedule)
        except cron.InvalidSchedule as exc:
            raise serializers.ValidationError(_error(exc.field, exc.message)) from None
        body = {"job": {"id": str(job.pk), "status": job.status, "type": job.type, "queue": job.queue}}
        return Response({**body, "schedule": self.get_serializer(schedule).data}, status=status.HTTP_201_CREATED)
