"""The shapes of a queue's limits in the REST API (``PATCH``/``GET /api/v1/queues/{name}``; docs/flow-control.md)."""

from __future__ import annotations

from rest_framework import serializers

from jobs.flow_report import KINDS
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


class FlowLimitSerializer(serializers.Serializer):
    limit = serializers.ChoiceField(
        choices=list(KINDS),
        help_text="Which limit: the queue's, each group's, or a job type's; a concurrency or a rate.",
    )
    type = serializers.CharField(allow_null=True, help_text="The job type of a type's limit (null otherwise).")
    concurrency = serializers.IntegerField(allow_null=True, help_text="A concurrency limit's value (null for a rate).")
    rate = serializers.CharField(allow_null=True, help_text='A rate limit\'s value, "100/s" (null for a concurrency).')
    burst = serializers.IntegerField(allow_null=True, help_text="A rate's burst (null for a concurrency).")
    running = serializers.IntegerField(
        allow_null=True,
        help_text="Jobs running against a concurrency (for the groups' limit: of every group together; null for a rate).",
    )
    held_jobs = serializers.IntegerField(help_text="Waiting jobs this limit holds back now.")


class FlowStateSerializer(serializers.Serializer):
    running = serializers.IntegerField(help_text="Jobs running against the queue's concurrency (flow queues).")
    lanes = serializers.IntegerField(help_text="Groups (and limited types) taking turns now.")
    lanes_waiting_for_a_slot = serializers.IntegerField()
    lanes_waiting_for_a_rate = serializers.IntegerField()
    held_jobs = serializers.IntegerField(help_text="Jobs held back by a limit now.")
    limits = FlowLimitSerializer(many=True, help_text="Each limit in force, what runs against it and what it holds.")
    counted_every_lane = serializers.BooleanField(
        help_text="False when the queue has more than 10,000 lanes: the counts cover the first 10,000."
    )


class QueueLimitsResponseSerializer(serializers.Serializer):
    name = serializers.CharField()
    limits = QueueLimitsSerializer()
    flow = FlowStateSerializer(required=False, help_text="What the limits hold back now (GET only).")
