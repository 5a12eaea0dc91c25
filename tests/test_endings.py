"""Every path that ends a job tells the API processes over Redis Pub/Sub, after the commit, one message
per batch (:mod:`jobs.endings`), and :func:`jobs.service.wait_for_end` wakes on it. Real Redis and
PostgreSQL; the listener is the broker's own subscription."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from jobs import client, service, states
from jobs.broker import Broker
from jobs.broker.endings import EndingsListener
from jobs.models import Job, Outcome, Status

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def own_watch() -> Iterator[None]:
    """The process's listener follows the test's Redis prefix: a new one for each test."""
    from jobs.service.watch import reset_end_watch

    reset_end_watch()
    yield
    reset_end_watch()


@pytest.fixture
def heard(broker: Broker) -> Iterator[EndingsListener]:
    listener = broker.listen_ended()
    listener.subscribe(5.0)
    yield listener
    listener.close()


def _job() -> Job:
    return client.enqueue("process_data", {"data_size": 100, "operation": "sort"})


def _messages(listener: EndingsListener, wait: float = 1.0) -> list[list[str]]:
    """Every message heard within ``wait`` seconds of the first (none: [] after ``wait``)."""
    got = []
    while ids := listener.next(wait):
        got.append(ids)
        wait = 0.2
    return got


def test_a_cancel_is_told_after_its_commit_not_before(heard: EndingsListener) -> None:
    job = _job()
    with transaction.atomic():
        service.cancel(job.pk)
        assert heard.next(0.3) == [], "told before the commit"
    assert _messages(heard) == [[str(job.pk)]]


def test_a_rolled_back_cancel_is_never_told(heard: EndingsListener) -> None:
    job = _job()
    with pytest.raises(RuntimeError), transaction.atomic():
        service.cancel(job.pk)
        raise RuntimeError("roll back")
    assert _messages(heard, 0.5) == []
    assert Job.objects.get(pk=job.pk).status == Status.PENDING


def test_a_recorded_batch_is_one_message_of_its_ended_jobs(heard: EndingsListener) -> None:
    """Completed and failed for good are told; one that goes to retry has not ended."""
    done, dead, again = _job(), client.enqueue("process_data", {"data_size": 1, "operation": "sort"}), _job()
    claimed = {j.pk: j for j in states.claim([str(done.pk), str(dead.pk), str(again.pk)], "host:1:abc")}
    now = timezone.now()
    results = [
        states.AttemptResult(claimed[done.pk], Outcome.COMPLETED, now, now, 0.1, result=1),
        states.AttemptResult(claimed[dead.pk], Outcome.FAILED, now, now, 0.1, error="x", permanent=True),
        states.AttemptResult(claimed[again.pk], Outcome.FAILED, now, now, 0.1, error="x"),
    ]
    states.record(results)
    [message] = _messages(heard)
    assert sorted(message) == sorted([str(done.pk), str(dead.pk)])


def test_an_expiry_is_told(heard: EndingsListener) -> None:
    job = client.enqueue("process_data", {"data_size": 1, "operation": "sort"}, expires_in="1s")
    states.expire(Job.objects.filter(pk=job.pk), timezone.now() + timedelta(minutes=1))
    assert _messages(heard) == [[str(job.pk)]]


def test_a_lost_attempt_that_fails_the_job_is_told(heard: EndingsListener) -> None:
    job = client.enqueue("process_data", {"data_size": 1, "operation": "sort"}, retry={"max_retries": 0})
    [claimed] = states.claim([str(job.pk)], "host:1:abc")
    assert states.record_lost(str(job.pk), claimed.worker, "lost to the worker (signal 9)") is not None
    assert _messages(heard) == [[str(job.pk)]]


def test_wait_for_end_wakes_a_thread_on_the_ending(broker: Broker) -> None:
    job = _job()
    answer: dict[str, Any] = {}

    def wait() -> None:
        from django.db import connection

        try:
            answer["job"] = service.wait_for_end(job.pk, 20.0)
            answer["at"] = time.monotonic()
        finally:
            connection.close()

    waiter = threading.Thread(target=wait)
    waiter.start()
    deadline = time.monotonic() + 10
    while service.end_watch().count() == 0:  # registered: the cancel cannot be missed now
        assert time.monotonic() < deadline, "the waiter never registered"
        time.sleep(0.01)
    ended = time.monotonic()
    service.cancel(job.pk)
    waiter.join(20)
    assert answer["job"].status == Status.CANCELLED
    assert answer["at"] - ended < 1.0, "woken late: not by the ending"
    assert service.end_watch().count() == 0


def test_wait_for_end_answers_at_its_limit(broker: Broker) -> None:
    job = _job()
    started = time.monotonic()
    assert service.wait_for_end(job.pk, 0.5).status == Status.PENDING
    assert 0.45 <= time.monotonic() - started < 3.0


def test_a_publish_to_an_unreachable_redis_is_dropped_not_raised(broker: Broker) -> None:
    from django.test import override_settings

    from jobs import endings
    from jobs.broker import reset_broker

    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        reset_broker()
        endings.publish(["00000000-0000-4000-8000-000000000000"])  # logged; nothing raised
    reset_broker()


def test_an_ending_told_while_redis_was_down_is_seen_when_the_listener_subscribes_again(
    own_redis: Any,
) -> None:
    """The publish is lost with Redis; the listener, subscribing again, wakes every waiter to look again."""
    job = _job()
    watch = service.end_watch()
    assert watch.start(timeout=5.0), "the listener did not subscribe"
    answer: dict[str, Any] = {}

    def wait() -> None:
        from django.db import connection

        try:
            answer["job"] = service.wait_for_end(job.pk, 30.0)
        finally:
            connection.close()

    waiter = threading.Thread(target=wait)
    waiter.start()
    deadline = time.monotonic() + 10
    while watch.count() == 0:
        assert time.monotonic() < deadline, "the waiter never registered"
        time.sleep(0.01)
    own_redis.stop()
    service.cancel(job.pk)  # its publish fails: logged, not raised
    started = time.monotonic()
    own_redis.start()
    waiter.join(20)
    assert not waiter.is_alive(), "the waiter slept through the ending"
    assert answer["job"].status == Status.CANCELLED
    assert time.monotonic() - started < 10
