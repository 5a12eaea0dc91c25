"""The broker on a real Redis Cluster of three masters: scripts in one slot each, queues spread over the
masters, and a worker of several queues woken within milliseconds (no BLPOP across slots).

These tests build the broker on ``redis.cluster.RedisCluster`` directly; tests/test_redis_cluster.py goes
through the settings (a ``redis+cluster://`` URL), which wrap it in ``jobs.broker.cluster.LazyCluster``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.cluster import RedisCluster

from jobs.broker import Broker, PushItem, Settlement
from tests.helpers import DrivenClock
from tests.redis_cluster import Cluster

pytestmark = pytest.mark.slow
QUEUES = ["default", "high", "low", "emails", "reports"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    group = Cluster(Path(tmp_path_factory.mktemp("cluster")))
    group.start()
    try:
        yield group
    finally:
        group.stop()


@pytest.fixture
def broker(cluster: Cluster, request: pytest.FixtureRequest) -> Broker:
    return Broker(RedisCluster.from_url(cluster.url), f"zt-{request.node.name[-40:]}")


def test_queues_spread_over_the_masters_and_every_script_runs(broker: Broker) -> None:
    assert broker.cluster
    client = broker.client
    masters = {client.get_node_from_key(broker.keys(q).ready).port for q in QUEUES}  # type: ignore[attr-defined]
    assert len(masters) >= 2, "the five queues all hash to one master: pick other names"
    for index, queue in enumerate(QUEUES):
        assert broker.push([PushItem(queue, f"{queue}-1", 0), PushItem(queue, f"{queue}-2", 5)]) == 2
        assert broker.queue_names() >= {queue}
        claim = broker.claim(queue, "worker-1", 1, 30_000)
        assert claim.ids == [f"{queue}-2"]  # the higher priority first, in its own slot
        assert broker.renew(queue, "worker-1", claim.ids, 30_000) == []
        assert broker.settle(queue, "worker-1", [Settlement(f"{queue}-2", "ack")]) == [True]
        assert broker.depths(queue) == {"ready": 1, "delayed": 0, "leased": 0, "paused": 0}, index


def test_a_driven_clock_reclaims_an_expired_lease_on_the_cluster(cluster: Cluster) -> None:
    clock = DrivenClock()
    broker = Broker(RedisCluster.from_url(cluster.url), "zt-clock", clock)
    broker.push([PushItem("reports", "r-1", 0)])
    assert broker.claim("reports", "dead-worker", 1, 1_000).ids == ["r-1"]
    clock.advance(1_500)
    assert [(e.job_id, e.worker_id) for e in broker.reclaim_expired("reports", 10)] == [("r-1", "dead-worker")]


def test_a_worker_of_several_queues_wakes_as_a_job_arrives_in_any_of_them(cluster: Cluster) -> None:
    waiter = Broker(RedisCluster.from_url(cluster.url), "zt-wake")
    sender = Broker(RedisCluster.from_url(cluster.url), "zt-wake")
    queues = ["emails", "reports", "low"]
    assert waiter.wait_and_claim(queues, 0.01, "emails", "w", 10, 30_000).ids == []  # subscribes, finds none
    for queue in queues:
        pushed = threading.Timer(0.2, lambda q=queue: sender.push([PushItem(q, f"late-{q}", 0)]))
        pushed.start()
        began = time.monotonic()
        claim = waiter.wait_and_claim(queues, 5.0, queue, "w", 10, 30_000)
        waited = time.monotonic() - began
        pushed.join()
        assert claim.ids == [f"late-{queue}"], queue
        assert 0.15 < waited < 1.0, f"woken {waited:.3f} s after waiting began (the push came at 0.2 s)"


def test_a_wake_up_published_while_the_worker_claims_is_not_lost(cluster: Cluster) -> None:
    waiter = Broker(RedisCluster.from_url(cluster.url), "zt-lost")
    sender = Broker(RedisCluster.from_url(cluster.url), "zt-lost")
    queues = ["default", "high"]
    waiter.wait_and_claim(queues, 0.01, "default", "w", 10, 30_000)  # subscribed from here on
    sender.push([PushItem("high", "between", 0)])  # while the worker is not waiting
    began = time.monotonic()
    claim = waiter.wait_and_claim(queues, 5.0, "high", "w", 10, 30_000)
    assert claim.ids == ["between"]
    assert time.monotonic() - began < 1.0


def test_resuming_a_queue_wakes_a_worker_of_several_queues(cluster: Cluster) -> None:
    waiter = Broker(RedisCluster.from_url(cluster.url), "zt-pause")
    operator = Broker(RedisCluster.from_url(cluster.url), "zt-pause")
    queues = ["emails", "reports"]
    operator.set_paused("reports", True)
    operator.push([PushItem("reports", "held", 0)])
    waiter.wait_and_claim(queues, 0.01, "reports", "w", 10, 30_000)
    assert waiter.wait_and_claim(queues, 0.05, "reports", "w", 10, 30_000).paused
    threading.Timer(0.2, lambda: operator.set_paused("reports", False)).start()
    began = time.monotonic()
    claim = waiter.wait_and_claim(queues, 5.0, "reports", "w", 10, 30_000)
    assert claim.ids == ["held"]
    assert time.monotonic() - began < 1.0


def test_a_broker_with_a_short_socket_timeout_works_on_the_cluster(broker: Broker) -> None:
    quick = broker.with_socket_timeout(0.5)
    assert quick.cluster
    quick.push([PushItem("low", "quick-1", 0)])
    assert broker.ids("low")["ready"] == {"quick-1"}
