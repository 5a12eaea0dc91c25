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
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from jobs import masking
from jobs.api.schema import COMMON_ERRORS, error_responses
from jobs.api.serializers import QueueNameField
from jobs.models import PRIORITY_MAX, PRIORITY_MIN
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


@extend_schema_field({"type": "integer", "minimum": PRIORITY_MIN, "maximum": PRIORITY_MAX})
class PriorityField(serializers.IntegerField):
    """-100 to 100, as documented; the range is checked with the job (its message names the value)."""


class JobTemplateSerializer(_RefusesUnknownFields):
    """The job each fire submits (the body of ``POST /api/v1/jobs`` without timing fields)."""

    type = serializers.CharField(source="job_type", min_length=1, max_length=100)
    payload = serializers.JSONField(required=False, default=dict)
    queue = QueueNameField(required=False, default="default")
    priority = PriorityField(required=False, default=0)
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
        # A blank value is refused ("may not be blank"); the schema says so with minLength.
        extra_kwargs = {"name": {"min_length": 1}, "cron": {"min_length": 1}, "timezone": {"min_length": 1}}

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


class TriggeredJobSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField()
    type = serializers.CharField()
    queue = serializers.CharField()


class TriggerResultSerializer(serializers.Serializer):
    job = TriggeredJobSerializer(help_text="The job submitted now.")
    schedule = ScheduleSerializer()


_ID = OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The schedule's id.")
_TAGS = ["schedules"]


def _action(operation_id: str, summary: str, description: str, status: int = 200, body: Any = None) -> Any:
    """The schema of a pause, resume or trigger action: no request body, the schedule's permission."""
    errors = error_responses(*((400,) if status == 201 else ()), 403, 404, *COMMON_ERRORS)
    return extend_schema(
        operation_id=operation_id,
        tags=_TAGS,
        summary=summary,
        description=description + " Needs `scheduler.change_schedule`.",
        parameters=[_ID],
        request=None,
        responses={status: body or ScheduleSerializer, **errors},
    )


@extend_schema_view(
    list=extend_schema(
        operation_id="list_schedules",
        tags=_TAGS,
        summary="List recurring jobs, by name",
        responses={200: ScheduleSerializer(many=True), **error_responses(*COMMON_ERRORS)},
    ),
    create=extend_schema(
        operation_id="create_schedule",
        tags=_TAGS,
        summary="Create a recurring job",
        description="A bad cron expression, time zone or job template is a 400 naming the field. Needs `scheduler.add_schedule`.",
        examples=[
            OpenApiExample(
                "NightlyReport",
                value={
                    "name": "nightly-report",
                    "cron": "0 3 * * *",
                    "timezone": "Europe/Paris",
                    "job": {"type": "send_email", "payload": {"email": "ops@example.com", "subject": "Report"}},
                },
                request_only=True,
            )
        ],
        responses={201: ScheduleSerializer, **error_responses(400, 403, *COMMON_ERRORS)},
    ),
    retrieve=extend_schema(
        operation_id="get_schedule",
        tags=_TAGS,
        summary="Get a recurring job",
        parameters=[_ID],
        responses={200: ScheduleSerializer, **error_responses(404, *COMMON_ERRORS)},
    ),
    update=extend_schema(
        operation_id="replace_schedule",
        tags=_TAGS,
        summary="Replace a recurring job",
        description="Needs `scheduler.change_schedule`.",
        parameters=[_ID],
        responses={200: ScheduleSerializer, **error_responses(400, 403, 404, *COMMON_ERRORS)},
    ),
    partial_update=extend_schema(
        operation_id="update_schedule",
        tags=_TAGS,
        summary="Change some fields of a recurring job",
        description="Needs `scheduler.change_schedule`.",
        parameters=[_ID],
        responses={200: ScheduleSerializer, **error_responses(400, 403, 404, *COMMON_ERRORS)},
    ),
    destroy=extend_schema(
        operation_id="delete_schedule",
        tags=_TAGS,
        summary="Delete a recurring job",
        description="The jobs it submitted stay. Needs `scheduler.delete_schedule`.",
        parameters=[_ID],
        responses={204: OpenApiResponse(description="Deleted."), **error_responses(403, 404, *COMMON_ERRORS)},
    ),
    pause=_action("pause_schedule", "Pause a recurring job", "Fire times while paused are not run later."),
    resume=_action("resume_schedule", "Resume a paused recurring job", "It fires from the next fire time after now."),
    trigger=_action(
        "trigger_schedule",
        "Submit a recurring job's job now",
        "Outside its cron times, which stay as they were.",
        status=201,
        body=TriggerResultSerializer,
    ),
)
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
