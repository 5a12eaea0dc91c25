"""Names are checked as a whole: ``$`` in a Python pattern also matches before a final newline, so
``"default\\n"`` once passed as a queue name and made the Redis key ``{default\\n}:seq``."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from jobs import client, queues
from jobs.models import Job
from jobs.processors.webhook import parse_payload
from jobs.registry import PermanentError
from jobs.validation import InvalidJob
from tests.helpers import SEED_JOB
from workers.selection import QueueSpecError, parse_queues

pytestmark = pytest.mark.django_db(transaction=True)

NEWLINE_NAMES = ["default\n", "emails\n", "a\n"]


@pytest.mark.parametrize("name", NEWLINE_NAMES)
def test_a_queue_name_with_a_final_newline_is_refused_everywhere(name: str, api: APIClient, broker: Any) -> None:
    assert client.enqueue("send_email", {"email": "user@example.com"}, queue=name.rstrip("\n")).status == "pending"
    answer = api.post("/api/v1/jobs", {**SEED_JOB, "queue": name}, format="json")
    assert answer.status_code == 400, answer.content
    assert answer.json()["error"]["details"] == {
        "queue": [f"{name!r} is not a queue name (1-64 of A-Z a-z 0-9 _ . : -)"]
    }
    batch = api.post("/api/v1/jobs/batch", {"jobs": [SEED_JOB, {**SEED_JOB, "queue": name}]}, format="json")
    assert batch.status_code == 400 and list(batch.json()["error"]["details"]) == ["jobs[1].queue"]
    listed = api.get("/api/v1/jobs", {"queue": name})
    assert listed.status_code == 400 and list(listed.json()["error"]["details"]) == ["queue"]
    with pytest.raises(InvalidJob) as refused:
        client.enqueue("send_email", {"email": "user@example.com"}, queue=name)
    assert refused.value.field == "queue"
    with pytest.raises(InvalidJob):
        queues.set_paused(name, True)
    with pytest.raises(QueueSpecError):
        parse_queues(f"high:3,{name}:1")  # a weighted item's name is not stripped
    schedule = {"name": "nightly", "cron": "@daily", "job": {"type": "send_email", "queue": name}}
    refused_schedule = api.post("/api/v1/schedules", schedule, format="json")
    assert refused_schedule.status_code == 400, refused_schedule.content
    assert "queue" in str(refused_schedule.json()["error"]["details"])
    assert not Job.objects.exclude(queue=name.rstrip("\n")).exists()
    assert not [key for key in broker.client.scan_iter(match=f"{broker.prefix}:*") if b"\n" in key]


def test_a_webhook_header_name_with_a_final_newline_is_refused() -> None:
    with pytest.raises(PermanentError, match="is not a valid header name"):
        parse_payload({"url": "https://example.com/hook", "headers": {"X-Token\n": "1"}})
    assert parse_payload({"url": "https://example.com/hook", "headers": {"X-Token": "1"}}).headers == {"X-Token": "1"}
