"""The shapes of a queue's limits in the REST API (``PATCH``/``GET /api/v1/queues/{name}``; docs/flow-control.md)."""

from __future__ import annotations

from rest_framework import serializers

from jobs.limits import MAX_BURST, MAX_CONCURRENCY, MAX_GROUP, MAX_WEIGHT, MAX_WEIGHTED_GROUPS

GROUP_PATTERN = r"^[^\u0000-\u001f\u007f]+$"  # no control characters (jobs.limits.check_group)

# A count of 1 to 999,999,999 (not all zeros) per second, minute or hour, as jobs.limits reads it; "" is none.
RATE_PATTERN = r"^((?!0+/)[0-9]{1,9}/(s|m|h))?$"


class GroupWeightSerializer(serializers.Serializer):
    group = serializers.RegexField(GROUP_PATTERN, min_length=1, max_length=MAX_GROUP, help_text="A group's name.")
    weight = serializers.IntegerField(min_value=1, max_value=MAX_WEIGHT, help_text="Its turns per round.")


class QueueLimitsSerializer(serializers.Serializer):
    """A queue's limits and its groups' (docs/flow-control.md). In a PATCH, give only those to change;
    null resets one to the configuration's default. In an answer, null is no limit."""

    concurrency = serializers.IntegerField(min_value=1, max_value=MAX_CONCURRENCY, allow_null=True, required=False)
    rate_limit = serializers.RegexField(
        RATE_PATTERN, allow_blank=True, allow_null=True, required=False, help_text='"100/s", "1000/m" or "50000/h".'
    )
    rate_burst = serializers.IntegerField(min_value=1, max_value=MAX_BURST, allow_null=True, required=False)
    group_concurrency = serializers.IntegerField(
        min_value=1, max_value=MAX_CONCURRENCY, allow_null=True, required=False
    )
    group_rate_limit = serializers.RegexField(RATE_PATTERN, allow_blank=True, allow_null=True, required=False)
    group_rate_burst = serializers.IntegerField(min_value=1, max_value=MAX_BURST, allow_null=True, required=False)
    group_weights = GroupWeightSerializer(  # type: ignore[call-arg]  # DRF's many=True takes max_length; the stubs do not say
        many=True,
        allow_null=True,
        required=False,
        max_length=MAX_WEIGHTED_GROUPS,
        help_text='Turns per round by group (1 for a group not named): [{"group": "vip", "weight": 3}].',
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
