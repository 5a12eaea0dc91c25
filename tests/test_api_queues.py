"""Queue and system statistics, workers, pause and resume: through the API and through jobs.queues."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from rest_framework.test import APIClient

from jobs import client, queues
from jobs.broker import heartbeat
from jobs.models import Job, QueueState, Status
from tests.helpers import EMAIL_PAYLOAD, token_client

pytestmark = pytest.mark.django_db(transaction=True)


def count_done(broker: Any, queue: str, name: str, value: int, minutes_ago: int = 0) -> None:
    minute = int(time.time() // 60) - minutes_ago
    broker.client.set(f"{broker.keys(queue).tag}:{name}:{minute}", value)


def fill(queue: str, statuses: dict[str, int]) -> None:
    for status, n in statuses.items():
        for _ in range(n):
            job = client.enqueue("send_email", EMAIL_PAYLOAD, queue=queue)
            Job.objects.filter(pk=job.pk).update(status=status)


def test_queue_stats_counts_depths_and_throughput(api: APIClient, broker: Any) -> None:
    fill("emails", {Status.COMPLETED: 3, Status.FAILED: 1, Status.EXPIRED: 2})
    client.enqueue("send_email", EMAIL_PAYLOAD, queue="emails")  # pending, in Redis
    client.enqueue("send_email", EMAIL_PAYLOAD, queue="emails", delay="1h")  # scheduled, delayed in Redis
    fill("other", {Status.COMPLETED: 2})
    count_done(broker, "emails", "completed", 12)
    count_done(broker, "emails", "failed", 6)
    response = api.get("/api/v1/queues/emails/stats")
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "emails" and body["paused"] is False
    assert body["counts"] == {
        "waiting": 0,  # blocked on parents (docs/workflows.md)
        "pending": 1,
        "scheduled": 1,
        "running": 0,
        "retrying": 0,
        "completed": 3,
        "failed": 1,
        "cancelled": 0,
        "expired": 2,
    }
    assert body["total"] == 8
    assert body["depth"]["ready"] >= 1 and body["depth"]["delayed"] == 1 and body["depth"]["leased"] == 0
    assert body["throughput"] == {"window_seconds": 60, "completed": 12, "failed": 6, "total": 18, "per_second": 0.3}


def test_throughput_window_takes_part_of_the_previous_minute() -> None:
    at_start_of_minute = 60 * 1000.0
    half_way = at_start_of_minute + 30
    assert queues._windowed([10, 4], at_start_of_minute) == 14
    assert queues._windowed([10, 4], half_way) == 9
    assert queues._windowed([0, 0], half_way) == 0


def test_unused_queue_is_empty_not_missing(api: APIClient) -> None:
    body = api.get("/api/v1/queues/never.used:yet-1/stats").json()
    assert body["total"] == 0 and set(body["counts"].values()) == {0} and body["paused"] is False


def test_pause_and_resume(api: APIClient, broker: Any) -> None:
    response = api.post("/api/v1/queues/emails/pause")
    assert response.status_code == 200 and response.json()["paused"] is True
    assert QueueState.objects.get(name="emails").paused and broker.depths("emails")["paused"] == 1
    assert api.get("/api/v1/queues/emails/stats").json()["paused"] is True
    assert client.enqueue("send_email", EMAIL_PAYLOAD, queue="emails").status == "pending"  # still accepted
    response = api.post("/api/v1/queues/emails/resume")
    assert response.status_code == 200 and response.json()["paused"] is False
    assert not QueueState.objects.get(name="emails").paused and broker.depths("emails")["paused"] == 0


def test_pause_and_resume_need_the_permission(broker: Any) -> None:
    user = User.objects.create_user(f"ops-{uuid.uuid4().hex[:6]}")
    user.user_permissions.add(Permission.objects.get(codename="view_job"))
    c = token_client(user)
    assert c.get("/api/v1/queues/emails/stats").status_code == 200
    response = c.post("/api/v1/queues/emails/pause")
    assert response.status_code == 403 and "jobs.change_queuestate" in response.json()["error"]["message"]
    user.user_permissions.add(Permission.objects.get(codename="change_queuestate"))
    assert c.post("/api/v1/queues/emails/pause").status_code == 200
    assert c.post("/api/v1/queues/emails/resume").status_code == 200


def test_system_stats(api: APIClient, broker: Any) -> None:
    fill("a", {Status.COMPLETED: 2, Status.RUNNING: 1})
    fill("b", {Status.FAILED: 1})
    queues.pause("c")
    count_done(broker, "a", "completed", 30)
    heartbeat.publish(
        broker,
        "w1",
        {
            "hostname": "h",
            "pid": 1,
            "queues": "a,b",
            "concurrency": 4,
            "busy": 1,
            "processed": 10,
            "failed": 2,
            "started_at": time.time() - 5,
        },
    )
    body = api.get("/api/v1/stats").json()
    assert body["counts"]["completed"] == 2 and body["counts"]["running"] == 1 and body["counts"]["failed"] == 1
    assert body["total"] == 4
    by_name = {q["name"]: q for q in body["queues"]}
    assert set(by_name) >= {"a", "b", "c"}
    assert by_name["a"]["total"] == 3 and by_name["c"]["paused"] is True and by_name["c"]["total"] == 0
    assert body["throughput"]["completed"] == 30
    assert body["workers"] == {
        "count": 1,
        "busy": 1,
        "concurrency": 4,
        "utilization": 0.25,
        "processed": 10,
        "failed": 2,
    }
    assert body["uptime_seconds"] > 0 and body["started_at"].endswith("Z") and body["version"] == "0.1.0"


def test_worker_stats(api: APIClient, broker: Any) -> None:
    assert api.get("/api/v1/workers/stats").json() == {
        "workers": [],
        "totals": {"count": 0, "busy": 0, "concurrency": 0, "utilization": 0.0, "processed": 0, "failed": 0},
    }
    for i, busy in ((1, 2), (2, 0)):
        heartbeat.publish(
            broker,
            f"w{i}",
            {
                "hostname": "host",
                "pid": i,
                "queues": "default,emails",
                "concurrency": 2,
                "busy": busy,
                "processed": 5,
                "failed": 1,
                "started_at": time.time(),
            },
        )
    body = api.get("/api/v1/workers/stats").json()
    assert [w["id"] for w in body["workers"]] == ["w1", "w2"]
    assert body["workers"][0]["queues"] == ["default", "emails"] and body["workers"][0]["heartbeat_at"].endswith("Z")
    assert body["totals"] == {"count": 2, "busy": 2, "concurrency": 4, "utilization": 0.5, "processed": 10, "failed": 2}
    heartbeat.remove(broker, "w1")
    assert [w["id"] for w in api.get("/api/v1/workers/stats").json()["workers"]] == ["w2"]


def test_library_refuses_bad_queue_names() -> None:
    from jobs.validation import InvalidJob

    with pytest.raises(InvalidJob):
        queues.queue_stats("bad name")
    with pytest.raises(InvalidJob):
        queues.pause("")


def test_counts_are_live_on_a_small_table_and_shared_for_a_while_on_a_large_one(
    api: APIClient, broker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A GROUP BY over millions of rows for every dashboard refresh would load the database: past a
    size, one count serves every caller for a few seconds (here the threshold is lowered to 1 row)."""
    from django.core.cache import cache
    from django.db import connection

    client.enqueue("test_noop", {}, queue="big")
    client.enqueue("test_noop", {}, queue="big")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_job")  # the planner's estimate: 2 rows
    cache.delete_many(["zipline:counts:*", "zipline:counts:big"])
    assert api.get("/api/v1/queues/big/stats").json()["counts"]["pending"] == 2

    client.enqueue("test_noop", {}, queue="big")
    assert api.get("/api/v1/queues/big/stats").json()["counts"]["pending"] == 3  # small table: live

    monkeypatch.setattr(queues, "LIVE_COUNTS_BELOW", 1)
    assert api.get("/api/v1/stats").json()["counts"]["pending"] == 3
    client.enqueue("test_noop", {}, queue="big")
    assert api.get("/api/v1/stats").json()["counts"]["pending"] == 3  # the shared count, not a new one
    assert queues.counts_by_queue("big")["big"]["pending"] == 4  # per queue: its own key, counted now
    cache.delete("zipline:counts:*")  # what SHARED_COUNTS_SECONDS does
    assert api.get("/api/v1/stats").json()["counts"]["pending"] == 4
