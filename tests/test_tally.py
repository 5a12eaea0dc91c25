"""Completed, failed and their total (jobs.tally) agree everywhere: a known mix of outcomes, run by real
workers, reads the same in Prometheus, the API's stats and the dashboard, and no failure is counted twice.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from jobs import client, recovery, states, tally
from jobs.broker import Broker
from jobs.dashboard import charts, panels
from jobs.models import FINISHED, Job, Status
from tests.helpers import wait_for
from tests.procs import free_port, running, wait_for_workers
from tests.test_metrics import by_labels, scrape

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

QUEUE = "tally-mix"
COMPLETED_JOBS = 7
FAILED_JOBS = 3
# One more job fails its first attempt and completes on its second: one failed and one completed attempt.
COMPLETED_ATTEMPTS = COMPLETED_JOBS + 1
FAILED_ATTEMPTS = FAILED_JOBS + 1
TOTAL = COMPLETED_ATTEMPTS + FAILED_ATTEMPTS


def test_kinds_follow_the_status_the_database_gave_the_job() -> None:
    assert tally.kind(Status.COMPLETED) == "completed"
    assert tally.kind(Status.FAILED) == tally.kind(Status.RETRYING) == "failed"
    assert tally.kind(Status.CANCELLED) is None and tally.kind(None) is None  # cancelled, or a stale finish
    counted = tally.of_statuses([Status.COMPLETED, Status.RETRYING, Status.FAILED, Status.COMPLETED, None])
    assert (counted.completed, counted.failed, counted.total) == (2, 2, 4)


def test_a_minute_of_failures_only_peaks_at_its_own_count() -> None:
    """1,001 failed attempts in one minute draw a bar of 1,001, not 2,002."""
    chart = charts.throughput([0, 0], [0, 1001])
    assert (chart.completed, chart.failed, chart.total, chart.peak) == (0, 1001, 1001, 1001)
    assert chart.bars[1].completed_height == 0 and chart.bars[1].failed_y == 2  # the stack fills the chart once


def test_an_attempt_lost_with_its_worker_counts_as_failed_once(broker: Broker) -> None:
    """The supervisor and the reclaimer charge lost attempts through recovery.send_on: counted there."""
    jobs = [client.enqueue("test_noop", {}, queue=QUEUE, retry={"max_retries": n}) for n in (0, 1)]
    claimed = states.claim(broker.claim(QUEUE, "gone", 2, 30_000).ids, "gone")
    assert len(claimed) == 2
    for job in jobs:
        recovery.send_on(broker, QUEUE, str(job.pk), "gone", "worker lost (signal 9)")
    # (two minutes: the clock may turn a minute in between)
    assert sum(broker.counter_series(QUEUE, tally.FAILED, 2)) == 2  # one failed for good, one retrying
    assert sum(broker.counter_series(QUEUE, tally.COMPLETED, 2)) == 0


def prometheus(port: int) -> tuple[float, float]:
    """(processed, failed) of the test's queue, as one scrape of the pool's endpoint reports them."""
    families = scrape(port)
    processed = by_labels(families["job_queue_processed"], "job_queue_processed_total", "queue")
    failed = by_labels(families["job_queue_failed"], "job_queue_failed_total", "queue")
    return processed.get((QUEUE,), 0), failed.get((QUEUE,), 0)


def wait_for_a_fresh_minute(margin: float = 15.0) -> None:
    """The API's throughput is a 60 s window over per-minute counters: start with ``margin`` seconds
    left in this minute so that every outcome of the test lands in one counter."""
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.05)


def test_a_known_mix_reads_the_same_in_metrics_api_and_dashboard(
    broker: Broker, api: APIClient, admin_client: Client, tmp_path: Path
) -> None:
    port = free_port()
    args = ["runworkers", "--processes", "2", "--concurrency", "4", "--queues", QUEUE]
    with running(args, tmp_path, JQS_METRICS_ENABLED="true", JQS_METRICS_PORT=port) as pool:
        wait_for_workers(broker, 2, proc=pool)
        wait_for_a_fresh_minute()
        jobs = [client.enqueue("test_noop", {}, queue=QUEUE) for _ in range(COMPLETED_JOBS)]
        jobs += [client.enqueue("test_fail", {}, queue=QUEUE, retry={"max_retries": 0}) for _ in range(FAILED_JOBS)]
        retry = {"max_retries": 1, "backoff": "fixed", "initial_delay": "100ms", "jitter": False}
        jobs.append(client.enqueue("test_soak", {"ledger": str(tmp_path), "fail": 1}, queue=QUEUE, retry=retry))
        ids = [job.pk for job in jobs]
        wait_for(
            lambda: Job.objects.filter(pk__in=ids, status__in=FINISHED).count() == len(ids),
            30,
            message=f"every job of the mix to finish\n{pool.log()[-3000:]}",
        )

        # The counters are bumped right after the database write: give the last one a moment.
        wait_for(
            lambda: prometheus(port) == (TOTAL, FAILED_ATTEMPTS),
            10,
            message=f"{TOTAL} processed, got {prometheus(port)}",
        )

        def workers_totals() -> dict[str, Any]:
            totals: dict[str, Any] = api.get("/api/v1/workers/stats").json()["totals"]
            return totals

        wait_for(
            lambda: workers_totals()["processed"] == TOTAL,
            10,
            message=f"the heartbeats to count {TOTAL} attempts, got {workers_totals()}",
        )
        assert workers_totals()["failed"] == FAILED_ATTEMPTS
        queue_stats = api.get(f"/api/v1/queues/{QUEUE}/stats").json()
        system_stats = api.get("/api/v1/stats").json()
        overview = panels.overview()
        workers_panel = panels.workers()
        page = admin_client.get("/dashboard/").content.decode()

    assert Job.objects.filter(pk__in=ids, status=Status.COMPLETED).count() == COMPLETED_JOBS + 1
    assert Job.objects.filter(pk__in=ids, status=Status.FAILED).count() == FAILED_JOBS

    expected = {
        "window_seconds": 60,
        "completed": COMPLETED_ATTEMPTS,
        "failed": FAILED_ATTEMPTS,
        "total": TOTAL,
        "per_second": round(TOTAL / 60, 3),
    }
    assert queue_stats["throughput"] == expected
    assert system_stats["throughput"] == expected  # no other queue ran anything in this test's Redis

    [card] = [card for card in overview["cards"] if card["name"] == QUEUE]
    chart = card["chart"]
    assert (chart.completed, chart.failed, chart.total) == (COMPLETED_ATTEMPTS, FAILED_ATTEMPTS, TOTAL)
    assert chart.peak == TOTAL  # one minute holds them all, each attempt once
    assert card["completed"] == COMPLETED_JOBS + 1  # jobs on record, by status
    assert overview["hour"] == tally.Tally(COMPLETED_ATTEMPTS, FAILED_ATTEMPTS)
    shown = page.split(f'data-testid="queue-{QUEUE}"', 1)[1].split("</article>", 1)[0]
    assert f"{COMPLETED_ATTEMPTS} completed" in shown and f"{FAILED_ATTEMPTS} failed" in shown
    assert f"peak {TOTAL}" in shown
    by_worker = [worker["counted"] for worker in workers_panel["workers"]]
    assert sum(by_worker, tally.Tally()) == tally.Tally(COMPLETED_ATTEMPTS, FAILED_ATTEMPTS)


def test_a_job_that_kills_its_worker_is_one_failed_attempt_in_metrics_and_redis(broker: Broker, tmp_path: Path) -> None:
    port = free_port()
    args = ["runworkers", "--processes", "1", "--queues", QUEUE]
    with running(args, tmp_path, JQS_METRICS_ENABLED="true", JQS_METRICS_PORT=port) as pool:
        wait_for_workers(broker, 1, proc=pool)
        job = client.enqueue("test_crash", {}, queue=QUEUE, retry={"max_retries": 0})
        wait_for(lambda: Job.objects.get(pk=job.pk).status == Status.FAILED, 30, message="the crashing job to fail")

        wait_for(
            lambda: prometheus(port) == (1, 1), 10, message=f"one processed and failed attempt, got {prometheus(port)}"
        )
    assert sum(broker.counter_series(QUEUE, tally.FAILED, 2)) == 1
    assert sum(broker.counter_series(QUEUE, tally.COMPLETED, 2)) == 0
