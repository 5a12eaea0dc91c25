"""Prometheus metrics of a real worker pool, scraped over HTTP and parsed with prometheus_client's parser.

Several worker processes run the jobs; the supervisor's endpoint must show their sums (multiprocess
mode), queue depths read from Redis at scrape time, a liveness answer on /healthz, and nothing at all
when metrics are turned off. The API's own HTTP metrics are in test_metrics_api.py.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from jobs import client, queues
from jobs.broker import Broker
from jobs.models import FINISHED, Job, JobAttempt, Status
from tests.helpers import wait_for
from tests.procs import free_port, running, wait_for_workers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

QUEUES = ("metrics-a", "metrics-b")
IDLE = "metrics-idle"  # nobody works it: its jobs stay pending
OK = {("metrics-a", "test_sleep"): 7, ("metrics-b", "test_sleep"): 5, ("metrics-b", "test_noop"): 3}
FAILING = {("metrics-a", "test_fail"): 2, ("metrics-b", "test_fail"): 1}
WAITING_IN_IDLE = 4


def get(port: int, path: str, host: str = "127.0.0.1") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(port: int, path: str = "/metrics") -> dict[str, list[Sample]]:
    """Every sample of the endpoint, by metric family name, parsed the way Prometheus' client parses."""
    status, body = get(port, path)
    assert status == 200, body
    return {family.name: family.samples for family in text_string_to_metric_families(body)}


def by_labels(samples: list[Sample], name: str, *labels: str) -> dict[tuple[str, ...], float]:
    out: dict[tuple[str, ...], float] = defaultdict(float)
    for sample in samples:
        if sample.name == name:
            out[tuple(sample.labels[label] for label in labels)] += sample.value
    return dict(out)


def settled(port: int, expected: dict[tuple[str, str], int]) -> dict[str, list[Sample]] | None:
    """The scrape, once its processed counters equal ``expected``; else None."""
    families = scrape(port)
    processed = by_labels(families["job_queue_processed"], "job_queue_processed_total", "queue", "type")
    return families if processed == expected else None


def enqueue_all() -> list[Job]:
    jobs = []
    for (queue, job_type), n in OK.items():
        payload = {"seconds": 0.15} if job_type == "test_sleep" else {}
        jobs += [client.enqueue(job_type, payload, queue=queue) for _ in range(n)]
    for (queue, job_type), n in FAILING.items():
        jobs += [client.enqueue(job_type, {}, queue=queue, retry={"max_retries": 0}) for _ in range(n)]
    return jobs


def test_a_scrape_after_n_jobs_on_several_processes_shows_n(broker: Broker, tmp_path: Path) -> None:
    port = free_port()
    idle = [client.enqueue("test_noop", {}, queue=IDLE) for _ in range(WAITING_IN_IDLE)]
    jobs = enqueue_all()
    args = ["runworkers", "--processes", "3", "--concurrency", "3", "--queues", ",".join(QUEUES)]
    with running(args, tmp_path, JQS_METRICS_ENABLED="true", JQS_METRICS_PORT=port) as pool:
        ids = [j.pk for j in jobs]
        wait_for(
            lambda: Job.objects.filter(pk__in=ids, status__in=FINISHED).count() == len(ids),
            60,
            message=f"all jobs finished\n{pool.log()[-3000:]}",
        )
        expected = {**OK, **FAILING}
        # The counters are bumped right after the database write: give the last one a moment.
        families = wait_for(lambda: settled(port, expected), 10, message="processed counters to reach the job counts")
        assert families is not None
        health = get(port, "/healthz")

    # The jobs really were spread over more than one process, so the sums below are sums.
    assert JobAttempt.objects.filter(job_id__in=ids).values("worker").distinct().count() >= 2
    assert Job.objects.filter(pk__in=ids, status=Status.FAILED).count() == sum(FAILING.values())
    n, m = sum(OK.values()), sum(FAILING.values())

    processed = by_labels(families["job_queue_processed"], "job_queue_processed_total", "queue", "type")
    assert processed == expected
    failed = by_labels(families["job_queue_failed"], "job_queue_failed_total", "queue", "type")
    assert {k: v for k, v in failed.items() if v} == FAILING and sum(failed.values()) == m

    histogram = families["job_queue_duration_seconds"]
    counts = by_labels(histogram, "job_queue_duration_seconds_count", "queue", "type")
    assert counts == expected and sum(counts.values()) == n + m
    buckets = [s for s in histogram if s.name == "job_queue_duration_seconds_bucket"]
    infinite = by_labels(
        [s for s in buckets if s.labels["le"] == "+Inf"], "job_queue_duration_seconds_bucket", "queue", "type"
    )
    assert infinite == expected
    fast = by_labels(
        [s for s in buckets if s.labels["le"] == "0.1"], "job_queue_duration_seconds_bucket", "queue", "type"
    )
    assert fast[("metrics-a", "test_sleep")] == 0 and fast[("metrics-b", "test_noop")] == 3  # 0.15 s sleeps vs no-ops
    sums = by_labels(histogram, "job_queue_duration_seconds_sum", "queue", "type")
    assert sums[("metrics-a", "test_sleep")] >= 7 * 0.15 and sums[("metrics-b", "test_sleep")] >= 5 * 0.15
    assert sums[("metrics-b", "test_noop")] < 3 * 0.15

    active = by_labels(families["job_queue_active_jobs"], "job_queue_active_jobs", "queue", "type")
    assert set(active) == set(expected) and all(v == 0 for v in active.values())

    pending = by_labels(families["job_queue_pending_jobs"], "job_queue_pending_jobs", "queue")
    assert pending[(IDLE,)] == WAITING_IN_IDLE == broker.depths(IDLE)["ready"]
    for queue in QUEUES:
        assert pending[(queue,)] == 0 == broker.depths(queue)["ready"]
    assert all(j.status == Status.PENDING for j in Job.objects.filter(pk__in=[j.pk for j in idle]))

    assert health == (200, "ok\n")


def test_active_jobs_counts_the_running_ones_and_pending_follows_redis(broker: Broker, tmp_path: Path) -> None:
    port = free_port()
    args = ["runworkers", "--processes", "2", "--concurrency", "4", "--queues", "metrics-live"]
    with running(args, tmp_path, JQS_METRICS_ENABLED="true", JQS_METRICS_PORT=port) as pool:
        wait_for_workers(broker, 2, proc=pool)
        jobs = [client.enqueue("test_cancellable", {}, queue="metrics-live") for _ in range(3)]
        wait_for(lambda: Job.objects.filter(pk__in=[j.pk for j in jobs], status=Status.RUNNING).count() == 3, 20)

        def active() -> float:
            samples = scrape(port)["job_queue_active_jobs"]
            return by_labels(samples, "job_queue_active_jobs", "queue", "type").get(
                ("metrics-live", "test_cancellable"), 0
            )

        wait_for(lambda: active() == 3, 10, message="three active jobs")
        queues.pause("metrics-live")
        waiting = [client.enqueue("test_noop", {}, queue="metrics-live") for _ in range(2)]
        pending = by_labels(scrape(port)["job_queue_pending_jobs"], "job_queue_pending_jobs", "queue")
        assert pending[("metrics-live",)] == 2 == broker.depths("metrics-live")["ready"]
        for job in jobs:
            client.cancel(job.pk)
        wait_for(lambda: active() == 0, 20, message="no active jobs after the cancels")
        assert all(j.status == Status.PENDING for j in Job.objects.filter(pk__in=[j.pk for j in waiting]))


def test_metrics_off_means_nothing_listens(broker: Broker, tmp_path: Path) -> None:
    port = free_port()
    with running(
        ["runworkers", "--processes", "1"], tmp_path, JQS_METRICS_ENABLED="false", JQS_METRICS_PORT=port
    ) as pool:
        wait_for_workers(broker, 1, proc=pool)
        job = client.enqueue("test_noop", {})
        wait_for(lambda: Job.objects.get(pk=job.pk).status == Status.COMPLETED, 20)
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
            pass


def test_metrics_path_is_configurable_and_unknown_paths_are_404(broker: Broker, tmp_path: Path) -> None:
    port = free_port()
    env: dict[str, Any] = {"JQS_METRICS_ENABLED": "true", "JQS_METRICS_PORT": port, "JQS_METRICS_PATH": "/prom"}
    with running(["runworkers", "--processes", "1"], tmp_path, **env) as pool:
        wait_for_workers(broker, 1, proc=pool)
        assert "job_queue_pending_jobs" in scrape(port, "/prom")
        assert get(port, "/metrics")[0] == 404
        assert get(port, "/healthz") == (200, "ok\n")


def test_metrics_listen_on_the_configured_address_only(broker: Broker, tmp_path: Path) -> None:
    """JQS_METRICS_HOST: here 127.0.0.2, another loopback address, so 127.0.0.1 must find nothing."""
    port = free_port()
    env: dict[str, Any] = {"JQS_METRICS_ENABLED": "true", "JQS_METRICS_PORT": port, "JQS_METRICS_HOST": "127.0.0.2"}
    with running(["runworkers", "--processes", "1"], tmp_path, **env) as pool:
        wait_for_workers(broker, 1, proc=pool)
        assert get(port, "/healthz", host="127.0.0.2") == (200, "ok\n")
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
            pass


def test_a_pool_whose_metrics_port_is_taken_says_so_in_one_line_and_goes_on(broker: Broker, tmp_path: Path) -> None:
    """A second pool on one host finds the port taken (here by a bare socket): one line, then it runs jobs."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env: dict[str, Any] = {"JQS_METRICS_ENABLED": "true", "JQS_METRICS_PORT": port, "JQS_METRICS_HOST": "127.0.0.1"}
        with running(["runworkers", "--processes", "1"], tmp_path, **env) as pool:
            wait_for_workers(broker, 1, proc=pool)
            job = client.enqueue("test_noop", {})
            wait_for(lambda: Job.objects.get(pk=job.pk).status == Status.COMPLETED, 20, message="the job to complete")
            assert pool.popen.poll() is None
            lines = [line for line in pool.log().splitlines() if str(port) in line]
    assert len(lines) == 1, lines
    [record] = [r for r in pool.records() if str(port) in r.get("message", "")]
    assert record["message"] == (
        f"worker metrics: 127.0.0.1:{port} is taken; serving no metrics here, carrying on"
        " (give this one its own JQS_METRICS_PORT)"
    )
    assert "Traceback" not in pool.log()


def test_observing_a_batch_of_durations_at_once_counts_what_observing_each_would() -> None:
    from prometheus_client import CollectorRegistry, Histogram

    from workers.metrics import observe_all

    values = [0.0, 0.0004, 0.001, 0.0011, 0.02, 0.02, 7.5, 3599.0, 3600.0, 4000.0, 0.001]
    each, batch = CollectorRegistry(), CollectorRegistry()
    buckets = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
    one_by_one = Histogram("d", "d", ["q"], buckets=buckets, registry=each).labels("a")
    together = Histogram("d", "d", ["q"], buckets=buckets, registry=batch).labels("a")
    for value in values:
        one_by_one.observe(value)
    observe_all(together, values)
    observe_all(together, [])

    def samples(registry: Any) -> list[tuple[str, dict[str, str], float]]:
        return [(s.name, s.labels, s.value) for m in registry.collect() for s in m.samples if "created" not in s.name]

    assert samples(batch) == samples(each)
    assert ("d_count", {"q": "a"}, float(len(values))) in samples(batch)
