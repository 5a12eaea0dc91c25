"""``?wait=`` served by WSGI alone (``manage.py runserver``, ``make run``, Django's test client): the view
waits in its own thread (:func:`jobs.service.wait_for_end`) and answers as the served API does
(tests/test_api_wait.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection

from jobs import client, service

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def own_watch() -> Iterator[None]:
    from jobs.service.watch import reset_end_watch

    reset_end_watch()
    yield
    reset_end_watch()


def _job() -> str:
    return str(client.enqueue("process_data", {"data_size": 100, "operation": "sort"}).pk)


def test_a_wait_ends_with_the_job(api: Any) -> None:
    job_id = _job()

    def cancel_once_waited_on() -> None:
        deadline = time.monotonic() + 10
        while service.end_watch().count() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        try:
            service.cancel(job_id)
        finally:
            connection.close()

    canceller = threading.Thread(target=cancel_once_waited_on)
    started = time.monotonic()
    canceller.start()
    response = api.get(f"/api/v1/jobs/{job_id}?wait=20s")
    canceller.join(10)
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert response["Zipline-Wait"] == "ended"
    assert time.monotonic() - started < 10


def test_a_job_deleted_while_waited_on_answers_404_at_once(api: Any) -> None:
    from jobs.models import Job

    job_id = _job()

    def delete_once_waited_on() -> None:
        deadline = time.monotonic() + 10
        while service.end_watch().count() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        try:
            service.delete_jobs(Job.objects.filter(pk=job_id))
        finally:
            connection.close()

    deleter = threading.Thread(target=delete_once_waited_on)
    started = time.monotonic()
    deleter.start()
    response = api.get(f"/api/v1/jobs/{job_id}?wait=20s")
    deleter.join(10)
    assert response.status_code == 404
    assert time.monotonic() - started < 10


def test_a_wait_runs_out_with_the_job_as_it_is(api: Any) -> None:
    started = time.monotonic()
    response = api.get(f"/api/v1/jobs/{_job()}?wait=300ms")
    assert response.status_code == 200 and response.json()["status"] == "pending"
    assert response["Zipline-Wait"] == "timeout" and "X-Zipline-Wait-Defer" not in response
    assert 0.29 <= time.monotonic() - started < 5


def test_without_wait_there_is_no_wait_header(api: Any) -> None:
    response = api.get(f"/api/v1/jobs/{_job()}")
    assert response.status_code == 200 and "Zipline-Wait" not in response


@pytest.mark.parametrize("value", ["x", "61s", "1m1s", " 5s"])
def test_a_bad_wait_is_400_naming_wait(api: Any, value: str) -> None:
    response = api.get(f"/api/v1/jobs/{_job()}", {"wait": value})
    assert response.status_code == 400
    assert "wait" in response.json()["error"]["details"]
