"""Issue 19, item 6: rate limits are atomic counters in Redis, and submits have default limits per user.

The attack: 32 threads against a 600/min limit got 1,110 of 2,000 requests through DRF's cache
throttle, which reads and writes its history without a lock. And one token could submit jobs
unchecked (16,000 jobs of 16 KiB in 4 s).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings
from rest_framework.test import APIClient

from jobs.broker import reset_broker
from jobs.models import Job
from tests.helpers import SEED_JOB
from tests.test_security_logins import valid_token
from zipline_site.config import ConfigError, load_config

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 32


@contextmanager
def rates(**changed: str | None) -> Iterator[None]:
    framework: dict[str, Any] = dict(settings.REST_FRAMEWORK)
    framework["DEFAULT_THROTTLE_RATES"] = {**framework["DEFAULT_THROTTLE_RATES"], **changed}
    with override_settings(REST_FRAMEWORK=framework):
        yield


def hammered(key: str, send: Callable[[APIClient], int], threads: int = THREADS, per_thread: int = 20) -> Counter[int]:
    """The statuses ``threads`` threads got, each sending ``per_thread`` requests (``send``) with ``key``'s
    token, all starting at once."""
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def hammer() -> None:
        client = APIClient(HTTP_AUTHORIZATION=f"Bearer {key}")
        try:
            start.wait(timeout=10)
            for _ in range(per_thread):
                code = send(client)
                with lock:
                    statuses[code] += 1
        finally:
            connection.close()

    running = [threading.Thread(target=hammer) for _ in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in running), "a request thread did not finish in 60 s"
    return statuses


def test_32_threads_get_no_more_than_the_limit_through(broker: Any) -> None:
    key, limit, per_thread = valid_token(), 40, 20
    with rates(stats=f"{limit}/min"):
        statuses = hammered(key, lambda client: client.get("/api/v1/stats").status_code, THREADS, per_thread)
    assert statuses == {200: limit, 429: THREADS * per_thread - limit}, statuses


def test_submits_are_limited_per_user_with_retry_after(broker: Any) -> None:
    first, second = APIClient(HTTP_AUTHORIZATION=f"Bearer {valid_token()}"), APIClient()
    second.credentials(HTTP_AUTHORIZATION=f"Bearer {valid_token()}")
    with rates(submit="3/min"):
        assert [first.post("/api/v1/jobs", SEED_JOB, format="json").status_code for _ in range(3)] == [201] * 3
        refused = first.post("/api/v1/jobs", SEED_JOB, format="json")
        assert second.post("/api/v1/jobs", SEED_JOB, format="json").status_code == 201  # a budget of its own
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "throttled"
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert Job.objects.count() == 4


def test_a_batch_counts_each_job_and_a_refused_batch_writes_nothing(broker: Any) -> None:
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {valid_token()}")
    six = {"jobs": [{**SEED_JOB, "name": f"n{i}"} for i in range(6)]}
    with rates(batch="10/min"):
        assert client.post("/api/v1/jobs/batch", six, format="json").status_code == 201
        refused = client.post("/api/v1/jobs/batch", six, format="json")
        four = {"jobs": six["jobs"][:4]}
        assert client.post("/api/v1/jobs/batch", four, format="json").status_code == 201  # the refusal cost nothing
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert Job.objects.count() == 10


def test_a_workflow_and_a_batch_with_callbacks_count_their_jobs_on_the_batch_rate(broker: Any) -> None:
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {valid_token()}")
    six = [{**SEED_JOB, "name": f"n{i}"} for i in range(6)]
    with rates(batch="10/min"):
        assert client.post("/api/v1/workflows", {"jobs": six}, format="json").status_code == 201
        refused = client.post("/api/v1/batches", {"jobs": six}, format="json")  # 6 more than the 4 left
        assert client.post("/api/v1/batches", {"jobs": six[:4]}, format="json").status_code == 201
    assert refused.status_code == 429
    assert Job.objects.count() == 10


def test_submits_pass_while_redis_is_down(broker: Any, caplog: pytest.LogCaptureFixture) -> None:
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {valid_token()}")
    with rates(submit="1/min"):
        assert client.post("/api/v1/jobs", SEED_JOB, format="json").status_code == 201  # the budget, used up
        with override_settings(REDIS_URL="redis://127.0.0.1:1/0"), caplog.at_level(logging.WARNING, "zipline.api"):
            reset_broker()
            try:
                codes = [client.post("/api/v1/jobs", SEED_JOB, format="json").status_code for _ in range(2)]
            finally:
                reset_broker()
        assert client.post("/api/v1/jobs", SEED_JOB, format="json").status_code == 429  # Redis is back
    assert codes == [201, 201]  # the rows are the truth; a limit must not take the API down with Redis
    outages = [r for r in caplog.records if "rate limits" in r.getMessage() and "unavailable" in r.getMessage()]
    assert len(outages) == 1, [r.getMessage() for r in caplog.records]


def test_default_rates_limit_submit_and_batch_and_are_configurable() -> None:
    defaults = load_config({})
    assert (defaults.api.submit_rate, defaults.api.batch_rate) == ("1200/min", "12000/min")
    rest: Any = dict(settings.REST_FRAMEWORK)["DEFAULT_THROTTLE_RATES"]
    assert rest["submit"] == settings.ZIPLINE.api.submit_rate and rest["batch"] == settings.ZIPLINE.api.batch_rate
    changed = load_config({"JQS_API_SUBMIT_RATE": "50/s", "JQS_API_BATCH_RATE": "off"})
    assert (changed.api.submit_rate, changed.api.batch_rate) == ("50/s", None)
    with pytest.raises(ConfigError, match=r"JQS_API_SUBMIT_RATE='fast': expected a rate such as 1200/min"):
        load_config({"JQS_API_SUBMIT_RATE": "fast"})


def test_the_stats_endpoints_let_600_requests_a_minute_through_per_user(broker: Any) -> None:
    """docs/api.md: the stats endpoints 600/min, per user (the rate in effect, not one set for the test)."""
    rates_in_effect: Any = dict(settings.REST_FRAMEWORK)["DEFAULT_THROTTLE_RATES"]
    assert rates_in_effect["stats"] == "600/min"
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {valid_token()}")
    codes = Counter(client.get("/api/v1/workers/stats").status_code for _ in range(599))
    codes[client.get("/api/v1/queues/default/stats").status_code] += 1  # one budget for every stats endpoint
    refused = client.get("/api/v1/stats")
    other_user = APIClient(HTTP_AUTHORIZATION=f"Bearer {valid_token()}").get("/api/v1/stats")
    assert codes == {200: 600}
    assert refused.status_code == 429 and 1 <= int(refused["Retry-After"]) <= 60
    assert other_user.status_code == 200
