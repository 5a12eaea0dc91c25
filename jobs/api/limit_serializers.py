"""The shapes of a queue's limits in the REST API (``PATCH``/``GET /api/v1/queues/{name}``; docs/flow-control.md)."""

from __future__ import annotations

from rest_framework import serializers


class QueueLimitsSerializer(serializers.Serializer):
    """A queue's limits and its groups' (docs/flow-control.md). In a PATCH, give only those to change;
    null resets one to the configuration's default. In an answer, null is no limit."""

    concurrency = serializers.IntegerField(min_value=1, allow_null=True, required=False)
    rate_limit = serializers.CharField(allow_null=True, required=False, help_text='"100/s", "1000/m" or "50000/h".')
    rate_burst = serializers.IntegerField(min_value=1, allow_null=True, required=False)
    group_concurrency = serializers.IntegerField(min_value=1, allow_null=True, required=False)
    group_rate_limit = serializers.CharField(allow_null=True, required=False)
    group_rate_burst = serializers.IntegerField(min_value=1, allow_null=True, required=False)
    group_weights = serializers.DictField(
        child=serializers.IntegerField(min_value=1, max_value=1000),
        allow_null=True,
        required=False,
        help_text='Turns per round by group (1 for a group not named): {"vip": 3}.',
    )


class FlowStateSerializer(serializers.Serializer):
    running = serializers.IntegerField(help_text="Jobs running against the queue's concurrency (flow queues).")
    lanes = serializers.IntegerField(help_text="Groups (and limited types) taking turns now.")
    lanes_waiting_for_a_slot = serializers.IntegerField()
    lanes_waiting_for_a_rate = serializers.IntegerField()
    held_jobs = serializers.IntegerField(help_text="Jobs in the lanes held by a limit (over at most 1,000 lanes).")


class QueueLimitsResponseSerializer(serializers.Serializer):
    name = serializers.CharField()
    limits = QueueLimitsSerializer()
    flow = FlowStateSerializer(required=False, help_text="What the limits hold back now (GET only).")
