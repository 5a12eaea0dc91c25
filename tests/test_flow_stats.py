"""What the limits hold back, as operators see it: ``Broker.flow_stats`` (one read of a queue's lanes,
slots and buckets) and the API's queue statistics built on it (docs/flow-control.md, "Seeing the
limits"), on a real Redis (time driven) and a real database."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from rest_framework.test import APIClient

from jobs import client, queue_limits
from jobs.broker import Broker, PushItem
from jobs.broker.items import FlowLimits, Limit
from jobs.models import QueueState
from tests.helpers import EMAIL_PAYLOAD, DrivenClock

LEASE = 30_000


def push(broker: Broker, queue: str, group: str, n: int) -> None:
    broker.push([PushItem(queue, f"{queue}-{group or 'none'}-{i}", 0, 0, group) for i in range(n)])


def rows(body: dict[str, Any]) -> dict[tuple[str, str | None], dict[str, Any]]:
    return {(row["limit"], row["type"]): row for row in body["flow"]["limits"]}


def test_one_read_counts_every_lane_and_what_holds_each(broker: Broker, clock: DrivenClock) -> None:
    push(broker, "q", "", 4)
    push(broker, "q", "a", 3)
    push(broker, "q", "b", 2)
    broker.push([PushItem("q", "later", 0, clock.ms + 60_000, "c")])
    limits = FlowLimits(group=Limit(concurrency=1))
    assert len(broker.claim("q", "w", 3, LEASE, limits=limits).ids) == 3  # one each of "", a, b
    stats = broker.flow_stats(["q"])["q"]
    assert stats.flow and (stats.waiting, stats.delayed, stats.leased) == (6, 1, 3)
    assert stats.queue_running == 3 and dict(stats.running) == {"": 1, "a": 1, "b": 1}
    broker.claim("q", "w", 0, LEASE, limits=limits)  # a claim of none still sets held lanes aside
    assert len(broker.claim("q", "w", 10, LEASE, limits=limits).ids) == 3  # the rest of the default lane
    stats = broker.flow_stats(["q"])["q"]
    assert sorted(stats.blocked) == [("g:a", 1, 2), ("g:b", 1, 1)]
    assert stats.waiting == 3 and stats.in_turn == 0 and not stats.cut_short


def test_a_plain_queue_reads_as_its_ready_set(broker: Broker) -> None:
    push(broker, "plain", "", 5)
    stats = broker.flow_stats(["plain", "never-used"])
    assert not stats["plain"].flow and stats["plain"].waiting == 5 == broker.depths("plain")["ready"]
    assert stats["never-used"].waiting == 0 and not stats["never-used"].paused


def test_a_rate_parks_lanes_and_the_queue_rate_holds_the_rest(broker: Broker, clock: DrivenClock) -> None:
    push(broker, "r", "a", 3)
    push(broker, "r", "b", 3)
    limits = FlowLimits(group=Limit(interval_ms=1000.0))
    assert len(broker.claim("r", "w", 10, LEASE, limits=limits).ids) == 2
    stats = broker.flow_stats(["r"])["r"]
    assert sorted(stats.parked) == [("a", 2), ("b", 2)] and stats.waiting == 4


def test_more_lanes_than_a_read_counts_are_said_to_be_cut_short(
    broker: Broker, clock: DrivenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobs.broker import flow

    for group in ("a", "b", "c", "d"):
        push(broker, "many", group, 2)
    monkeypatch.setattr(flow, "MAX_LANES_READ", 2)
    stats = broker.flow_stats(["many"])["many"]
    assert stats.cut_short and stats.waiting == 4  # two lanes of two counted
    monkeypatch.setattr(flow, "MAX_LANES_READ", 10)
    assert broker.flow_stats(["many"])["many"].waiting == 8


pytestmark_db = pytest.mark.django_db(transaction=True)


@pytest.fixture
def limited_type() -> Iterator[str]:
    from jobs.registry import processor, registry

    @processor("stats_limited", rate_limit="1/m", concurrency=1)
    def stats_limited(payload: Any, ctx: Any) -> None:
        return None

    try:
        yield "stats_limited"
    finally:
        registry.unregister("stats_limited")


@pytestmark_db
def test_queue_stats_show_each_limit_running_and_held(api: APIClient, broker: Broker) -> None:
    QueueState.objects.create(name="shown", concurrency=2, rate_limit="100/s", rate_burst=5, group_concurrency=1)
    for group, n in (("a", 3), ("b", 2), ("c", 1)):
        for _ in range(n):
            client.enqueue("send_email", EMAIL_PAYLOAD, queue="shown", group=group)
    book = queue_limits.LimitBook()
    assert len(broker.claim("shown", "w", 10, LEASE, limits=book.get("shown")).ids) == 2  # the queue's 2
    body = api.get("/api/v1/queues/shown/stats").json()
    assert body["depth"]["ready"] == 4  # every lane, not only the default one
    shown = rows(body)
    assert shown[("queue_concurrency", None)] == {
        "limit": "queue_concurrency",
        "type": None,
        "concurrency": 2,
        "rate": None,
        "burst": None,
        "running": 2,
        "held_jobs": 4,  # the queue is full: every waiting job is held by it
    }
    assert shown[("queue_rate", None)]["rate"] == "100/s" and shown[("queue_rate", None)]["burst"] == 5
    assert shown[("group_concurrency", None)]["running"] == 2
    api.patch("/api/v1/queues/shown", {"concurrency": None}, format="json")
    broker.claim("shown", "w", 10, LEASE, limits=queue_limits.LimitBook().get("shown"))  # c runs; a, b held
    body = api.get("/api/v1/queues/shown").json()
    assert body["flow"]["held_jobs"] == 3 and body["flow"]["lanes_waiting_for_a_slot"] == 2
    group_row = rows(body)[("group_concurrency", None)]
    assert (group_row["running"], group_row["held_jobs"]) == (3, 3)
    assert ("queue_concurrency", None) not in rows(body)


@pytestmark_db
def test_a_type_limit_shows_where_its_jobs_are(api: APIClient, broker: Broker, limited_type: str) -> None:
    for _ in range(3):
        client.enqueue(limited_type, {}, queue="typed")
    client.enqueue("send_email", EMAIL_PAYLOAD, queue="typed")
    book = queue_limits.LimitBook()
    assert len(broker.claim("typed", "w", 10, LEASE, limits=book.get("typed")).ids) == 2  # one of each type
    broker.claim("typed", "w", 10, LEASE, limits=book.get("typed"))
    shown = rows(api.get("/api/v1/queues/typed").json())
    conc = shown[("type_concurrency", limited_type)]
    assert (conc["concurrency"], conc["running"]) == (1, 1)
    assert shown[("type_rate", limited_type)]["rate"] == "1/m"
    assert conc["held_jobs"] + shown[("type_rate", limited_type)]["held_jobs"] == 2
    assert api.get("/api/v1/queues/untouched").json()["flow"]["limits"] == []


@pytestmark_db
def test_system_stats_show_every_queues_flow(api: APIClient, broker: Broker) -> None:
    QueueState.objects.create(name="sys-limited", group_concurrency=1)
    client.enqueue("send_email", EMAIL_PAYLOAD, queue="sys-limited", group="g")
    client.enqueue("send_email", EMAIL_PAYLOAD, queue="sys-plain")
    queues = {q["name"]: q for q in api.get("/api/v1/stats").json()["queues"]}
    assert queues["sys-limited"]["depth"]["ready"] == 1 and queues["sys-plain"]["depth"]["ready"] == 1
    assert [r["limit"] for r in queues["sys-limited"]["flow"]["limits"]] == ["group_concurrency"]
    assert queues["sys-plain"]["flow"]["limits"] == []
