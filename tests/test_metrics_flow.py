"""Flow control's metrics: jobs held back by a limit (a counter the claim feeds, by queue and limit),
jobs running per limited queue (a gauge read from Redis at scrape time), and group labels only when
``JQS_METRICS_GROUP_LABELS`` is on. A real worker pool scraped over HTTP, and the parts on a real Redis."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from jobs import client, queue_limits
from jobs.broker import Broker, PushItem
from jobs.broker.items import FlowLimits, Limit
from jobs.models import Job, QueueState, Status
from tests.helpers import EMAIL_PAYLOAD, DrivenClock, wait_for
from tests.procs import free_port, running, wait_for_workers
from tests.test_metrics import by_labels, scrape
from workers import metrics
from workers.metrics_server import QueueDepthCollector


def held_back(queue: str, limit: str, group: str = "") -> float:
    return REGISTRY.get_sample_value("job_queue_held_back_total", {"queue": queue, "limit": limit, "group": group}) or 0


def test_a_claim_reports_each_job_a_limit_held_back(broker: Broker, clock: DrivenClock) -> None:
    broker.push([PushItem("held", f"{g}-{i}", 0, 0, g) for g in ("a", "b") for i in range(3)])
    limits = FlowLimits(group=Limit(concurrency=1))
    first = broker.claim("held", "w", 10, 30_000, limits=limits)
    assert sorted(first.ids) == ["a-0", "b-0"] and sorted(first.held) == [
        ("group_concurrency", "a"),
        ("group_concurrency", "b"),
    ]
    assert broker.claim("held", "w", 10, 30_000, limits=limits).held == ()  # set aside already: nothing new
    full = broker.claim("held", "w", 10, 30_000, limits=FlowLimits(queue=Limit(concurrency=2)))
    assert full.ids == [] and full.held in ((), (("queue_concurrency", ""),))
    plain = broker.claim("plain", "w", 10, 30_000)
    assert plain.held == ()


def test_the_held_counter_names_a_group_only_when_asked(broker: Broker) -> None:
    held = (("group_concurrency", "customer:7"), ("type_rate", "mailer\ncustomer:7"), ("group_rate", "t\ncustomer:7"))
    before = held_back("count-q", "group_concurrency")
    metrics.count_held("count-q", held, group_labels=False)
    assert held_back("count-q", "group_concurrency") == before + 1
    assert held_back("count-q", "type_rate") >= 1
    named = held_back("count-q", "group_rate", "customer:7")
    metrics.count_held("count-q", held, group_labels=True)
    assert held_back("count-q", "group_concurrency", "customer:7") >= 1
    assert held_back("count-q", "group_rate", "customer:7") == named + 1
    assert held_back("count-q", "type_rate", "customer:7") == 0  # a type's limit never carries a group


@pytest.mark.django_db(transaction=True)
def test_the_scrape_reads_running_per_limited_queue_from_redis(broker: Broker) -> None:
    QueueState.objects.create(name="gauged", group_concurrency=1)
    for group in ("a", "a", "b"):
        client.enqueue("send_email", EMAIL_PAYLOAD, queue="gauged", group=group)
    client.enqueue("send_email", EMAIL_PAYLOAD, queue="plain-gauged")
    broker.claim("gauged", "w", 10, 30_000, limits=queue_limits.LimitBook().get("gauged"))
    families = {f.name: f for f in QueueDepthCollector(group_labels=True).collect()}
    running = {s.labels["queue"]: s.value for s in families["job_queue_limited_running_jobs"].samples}
    assert running == {"gauged": 2}  # a plain queue is not limited
    groups = {
        (s.labels["queue"], s.labels["group"]): s.value
        for s in families["job_queue_limited_group_running_jobs"].samples
    }
    assert groups == {("gauged", "a"): 1, ("gauged", "b"): 1}
    pending = {s.labels["queue"]: s.value for s in families["job_queue_pending_jobs"].samples}
    assert pending == {"gauged": 1, "plain-gauged": 1}  # the held job of group a counts as pending
    assert "job_queue_limited_group_running_jobs" not in {f.name for f in QueueDepthCollector().collect()}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_pool_scrape_shows_held_back_and_running_with_group_labels(broker: Broker, tmp_path: Path) -> None:
    QueueState.objects.create(name="metrics-flow", group_concurrency=1)
    port = free_port()
    args = ["runworkers", "--processes", "2", "--concurrency", "3", "--queues", "metrics-flow"]
    env: dict[str, object] = {
        "JQS_METRICS_ENABLED": "true",
        "JQS_METRICS_PORT": port,
        "JQS_METRICS_GROUP_LABELS": "true",
    }
    with running(args, tmp_path, "pool", **env) as pool:
        wait_for_workers(broker, 2, proc=pool)
        jobs = [client.enqueue("test_cancellable", {}, queue="metrics-flow", group=g) for g in "aabb"]
        ids = [j.pk for j in jobs]
        wait_for(
            lambda: Job.objects.filter(pk__in=ids, status=Status.RUNNING).count() == 2, 20, message=pool.log()[-2000:]
        )

        def seen() -> tuple[dict[tuple[str, ...], float], dict[tuple[str, ...], float]] | None:
            families = scrape(port)
            held = by_labels(families["job_queue_held_back"], "job_queue_held_back_total", "queue", "limit", "group")
            running = by_labels(families["job_queue_limited_running_jobs"], "job_queue_limited_running_jobs", "queue")
            return (held, running) if held and running else None

        found = wait_for(seen, 10, message="the held counter and the running gauge")
        assert found is not None
        held, running_now = found
        assert running_now == {("metrics-flow",): 2}
        assert set(held) <= {("metrics-flow", "group_concurrency", "a"), ("metrics-flow", "group_concurrency", "b")}
        assert all(n >= 1 for n in held.values())
        groups = by_labels(
            scrape(port)["job_queue_limited_group_running_jobs"],
            "job_queue_limited_group_running_jobs",
            "queue",
            "group",
        )
        assert groups == {("metrics-flow", "a"): 1, ("metrics-flow", "b"): 1}
        for job in jobs:
            client.cancel(job.pk)
        wait_for(lambda: not Job.objects.filter(pk__in=ids, status__in=[Status.RUNNING, Status.PENDING]).exists(), 20)
