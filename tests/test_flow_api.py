"""Flow control's inputs: PATCH /api/v1/queues/{name} and the group field, valid and not (400 naming
the field), the limits in force (row over configuration), and processors' type limits."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from jobs import client, queue_limits
from jobs.limits import InvalidLimit, Rate, TypeLimits, every_type_limit, lane, parse_rate
from jobs.models import Job, QueueState
from jobs.validation import InvalidJob
from tests.helpers import EMAIL_PAYLOAD, override_zipline, token_client

pytestmark = pytest.mark.django_db(transaction=True)


def test_patch_sets_limits_and_answers_those_in_force(api: APIClient) -> None:
    body = {"concurrency": 3, "rate_limit": "100/s", "rate_burst": 10, "group_concurrency": 1}
    response = api.patch("/api/v1/queues/emails", body, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "name": "emails",
        "limits": {
            "concurrency": 3,
            "rate_limit": "100/s",
            "rate_burst": 10,
            "group_concurrency": 1,
            "group_rate_limit": None,
            "group_rate_burst": 1,
            "group_weights": [],
        },
    }
    row = QueueState.objects.get(name="emails")
    assert (row.concurrency, row.rate_limit, row.group_concurrency) == (3, "100/s", 1)
    again = api.patch("/api/v1/queues/emails", {"concurrency": None}, format="json")
    assert again.json()["limits"]["concurrency"] is None
    assert again.json()["limits"]["rate_limit"] == "100/s"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rate_limit", "10/fortnight"),
        ("rate_limit", "0/s"),
        ("rate_limit", "-1/s"),
        ("group_rate_limit", "ten/s"),
        ("concurrency", 0),
        ("group_concurrency", -1),
        ("rate_burst", 0),
        ("speed", 1),
        ("group_weights[0]", ["vip"]),
        ("group_weights", {"vip": 3}),
        ("group_weights[0].weight", [{"group": "vip", "weight": 0}]),
        ("group_weights[0].group", [{"group": "", "weight": 2}]),
        ("group_weights[0].group", [{"group": "a\u0005b", "weight": 2}]),
    ],
)
def test_patch_refuses_bad_limits_naming_the_field(api: APIClient, field: str, value: Any) -> None:
    body = {"group_weights": value} if field.startswith("group_weights") else {field: value}
    response = api.patch("/api/v1/queues/emails", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["details"], response.json()
    assert not QueueState.objects.filter(name="emails").exists()


def test_patch_needs_the_queue_permission() -> None:
    reader = token_client(User.objects.create_user("reader"))
    assert reader.patch("/api/v1/queues/emails", {"concurrency": 1}, format="json").status_code == 403


def test_a_job_carries_its_group(api: APIClient) -> None:
    response = api.post(
        "/api/v1/jobs", {"type": "send_email", "payload": EMAIL_PAYLOAD, "group": "customer:42"}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["group"] == "customer:42"
    assert Job.objects.get(pk=response.json()["id"]).group == "customer:42"
    assert client.enqueue("send_email", EMAIL_PAYLOAD, group="customer:7").group == "customer:7"


@pytest.mark.parametrize("group", ["x" * 201, "a\nb", 42])
def test_a_bad_group_is_refused(api: APIClient, group: Any) -> None:
    response = api.post("/api/v1/jobs", {"type": "send_email", "payload": EMAIL_PAYLOAD, "group": group}, format="json")
    assert response.status_code == 400, response.content
    assert "group" in response.json()["error"]["details"]
    with pytest.raises(InvalidJob) as raised:
        client.enqueue("send_email", EMAIL_PAYLOAD, group=group)
    assert raised.value.field == "group"


def test_a_group_of_200_characters_is_taken() -> None:
    assert client.enqueue("send_email", EMAIL_PAYLOAD, group="g" * 200).group == "g" * 200


def test_rates_parse_per_second_minute_and_hour() -> None:
    assert parse_rate("r", "100/s") == Rate(100, 1)
    per_minute = parse_rate("r", "1000/m")
    assert per_minute is not None and per_minute.interval_ms == 60.0
    assert parse_rate("r", "50000/h") == Rate(50000, 3600)
    assert parse_rate("r", "") is None


def test_configuration_gives_defaults_and_a_row_overrides_them() -> None:
    with override_zipline(limits_queue_concurrency=5, limits_group_rate="10/s"):
        assert queue_limits.load(["q"])["q"].concurrency == 5
        QueueState.objects.create(name="q", concurrency=2)
        limits = queue_limits.load(["q"])["q"]
        assert limits.concurrency == 2 and limits.group_rate == Rate(10, 1)
        assert limits.flow().group.interval_ms == 100.0


def test_type_limits_come_from_the_processor_and_put_its_jobs_in_lanes() -> None:
    from jobs.registry import processor, registry

    @processor("limited_mail", rate_limit="10/s", concurrency=2)
    def limited_mail(payload: Any, ctx: Any) -> None:
        return None

    try:
        assert lane("limited_mail", "g1") == "limited_mail\ng1"
        assert lane("send_email", "g1") == "g1"
        assert dict(every_type_limit())["limited_mail"] == TypeLimits.parse("10/s", None, 2).as_limit()
    finally:
        registry.unregister("limited_mail")
    with pytest.raises(InvalidLimit):
        processor("bad", rate_limit="10/fortnight")


def test_group_weights_reach_the_claim(api: APIClient) -> None:
    weights = [{"group": "vip", "weight": 3}]
    response = api.patch("/api/v1/queues/weighted", {"group_weights": weights}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["limits"]["group_weights"] == weights
    assert queue_limits.LimitBook().get("weighted").weights == (("vip", 3),)


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"JQS_LIMITS_QUEUE_RATE": "10/fortnight"}, "JQS_LIMITS_QUEUE_RATE"),
        ({"JQS_LIMITS_GROUP_RATE": "0/s"}, "JQS_LIMITS_GROUP_RATE"),
        ({"JQS_LIMITS_GROUP_CONCURRENCY": "-1"}, "JQS_LIMITS_GROUP_CONCURRENCY"),
        ({"JQS_LIMITS_QUEUE_BURST": "-1"}, "JQS_LIMITS_QUEUE_BURST"),
    ],
)
def test_bad_limit_settings_are_one_line_naming_the_setting(env: dict[str, str], setting: str) -> None:
    from zipline_site.config import ConfigError, load_config

    with pytest.raises(ConfigError) as caught:
        load_config(env)
    message = str(caught.value)
    assert setting in message and env[setting] in message and "\n" not in message


def test_limit_settings_load_from_yaml(tmp_path: Any) -> None:
    from zipline_site.config import load_config

    path = tmp_path / "zipline.yaml"
    path.write_text("limits:\n  group_concurrency: 2\n  queue_rate: 100/s\n")
    config = load_config({"JQS_CONFIG": str(path)})
    assert (config.limits.group_concurrency, config.limits.queue_rate) == (2, "100/s")


def test_get_shows_the_limits_and_what_they_hold_back(api: APIClient, broker: Any) -> None:
    QueueState.objects.create(name="held", group_concurrency=1)
    for group, n in (("a", 3), ("b", 2)):
        for _ in range(n):
            client.enqueue("send_email", EMAIL_PAYLOAD, queue="held", group=group)
    limits = queue_limits.LimitBook().get("held")
    assert len(broker.claim("held", "w", 10, 30_000, limits=limits).ids) == 2
    response = api.get("/api/v1/queues/held")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["limits"]["group_concurrency"] == 1
    assert body["flow"] == {
        "running": 2,
        "lanes": 0,
        "lanes_waiting_for_a_slot": 2,
        "lanes_waiting_for_a_rate": 0,
        "held_jobs": 3,
        "limits": [
            {
                "limit": "group_concurrency",
                "type": None,
                "concurrency": 1,
                "rate": None,
                "burst": None,
                "running": 2,
                "held_jobs": 3,
            }
        ],
        "counted_every_lane": True,
    }
