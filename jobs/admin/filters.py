"""List filters of the job admin that do not scan the table: no ``SELECT DISTINCT`` over every job."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from jobs import service
from jobs.models import Job, QueueState
from jobs.registry import registry


class QueueFilter(admin.SimpleListFilter):
    """Queues known to Redis or with a saved state: no ``SELECT DISTINCT queue`` over every job."""

    title = "queue"
    parameter_name = "queue"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        names = set(QueueState.objects.values_list("name", flat=True))
        try:
            names |= service.known_queue_names()
        except service.BrokerUnavailable:
            pass  # the saved ones are still listed
        if self.value():
            names.add(str(self.value()))
        return [(name, name) for name in sorted(names)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        return queryset.filter(queue=self.value()) if self.value() else queryset


class TypeFilter(admin.SimpleListFilter):
    """The registered job types (plus the one selected): no ``SELECT DISTINCT type`` either."""

    title = "type"
    parameter_name = "type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        names = set(registry.types())
        if self.value():
            names.add(str(self.value()))
        return [(name, name) for name in sorted(names)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        return queryset.filter(type=self.value()) if self.value() else queryset
