"""The shapes of the statistics the REST API answers: a queue's, the system's and the workers'."""

from __future__ import annotations

from rest_framework import serializers

from jobs.api.limit_serializers import FlowStateSerializer


class CountsSerializer(serializers.Serializer):
    pending = serializers.IntegerField()
    scheduled = serializers.IntegerField()
    running = serializers.IntegerField()
    retrying = serializers.IntegerField()
    completed = serializers.IntegerField()
    failed = serializers.IntegerField()
    cancelled = serializers.IntegerField()
    expired = serializers.IntegerField()


class ThroughputSerializer(serializers.Serializer):
    window_seconds = serializers.IntegerField(help_text="Always 60: the last minute.")
    completed = serializers.IntegerField(help_text="Attempts that completed their job in the window.")
    failed = serializers.IntegerField(help_text="Attempts that failed in the window (never also counted as completed).")
    total = serializers.IntegerField(help_text="completed + failed.")
    per_second = serializers.FloatField(help_text="total / 60.")


class DepthSerializer(serializers.Serializer):
    ready = serializers.IntegerField(help_text="Ids waiting in Redis to be claimed (in every lane of a flow queue).")
    delayed = serializers.IntegerField(help_text="Ids waiting for their due time.")
    leased = serializers.IntegerField(help_text="Ids claimed by workers now.")


class QueueStatsSerializer(serializers.Serializer):
    name = serializers.CharField()
    paused = serializers.BooleanField()
    counts = CountsSerializer(help_text="Jobs by status (database).")
    total = serializers.IntegerField()
    throughput = ThroughputSerializer()
    depth = DepthSerializer(help_text="Redis structures of the queue.")
    flow = FlowStateSerializer(help_text="The limits in force and what they hold back now (docs/flow-control.md).")


class WorkersSummarySerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Live worker processes.")
    busy = serializers.IntegerField(help_text="Jobs running now.")
    concurrency = serializers.IntegerField(help_text="Jobs that can run at once.")
    utilization = serializers.FloatField(help_text="busy / concurrency.")
    processed = serializers.IntegerField(help_text="Attempts completed or failed since the workers started.")
    failed = serializers.IntegerField(help_text="Attempts failed since the workers started (part of processed).")


class SystemStatsSerializer(serializers.Serializer):
    counts = CountsSerializer()
    total = serializers.IntegerField()
    throughput = ThroughputSerializer()
    queues = QueueStatsSerializer(many=True)
    workers = WorkersSummarySerializer()
    started_at = serializers.DateTimeField(allow_null=True, help_text="When this API process started.")
    uptime_seconds = serializers.FloatField()
    version = serializers.CharField()


class WorkerSerializer(serializers.Serializer):
    id = serializers.CharField()
    hostname = serializers.CharField(allow_blank=True)
    pid = serializers.IntegerField()
    queues = serializers.ListField(child=serializers.CharField())
    concurrency = serializers.IntegerField()
    busy = serializers.IntegerField()
    processed = serializers.IntegerField()
    failed = serializers.IntegerField()
    started_at = serializers.DateTimeField(allow_null=True)
    heartbeat_at = serializers.DateTimeField(allow_null=True)


class WorkerStatsSerializer(serializers.Serializer):
    workers = WorkerSerializer(many=True)
    totals = WorkersSummarySerializer()
