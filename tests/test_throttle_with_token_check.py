"""A submission's rate-limit hit is made in the token check's own round trip to Redis when the process
remembers the token (jobs.api.throttling.EARLY_SCOPE): counted once, the limit still exact, over REST and gRPC."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from rest_framework.test import APIClient

from jobs import rate_counter
from jobs.api import token_memory
from jobs.broker import auth_generation, get_broker
from jobs.models import ApiToken, Job
from jobs.tokens import digest
from tests.grpc_support import GrpcServer, grpc_server, new_user, pb, stub_for
from tests.helpers import SEED_JOB
from tests.test_security_logins import valid_token
from tests.test_security_throttle import hammered, rates

pytestmark = pytest.mark.django_db(transaction=True)
__all__ = ["grpc_server"]  # a fixture


@pytest.fixture
def hits(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The counters hit in a round trip of their own (rate_counter.hit, still called through)."""
    made: list[str] = []
    own_hit = rate_counter.hit

    def counted(name: str, *args: Any, **kwargs: Any) -> Any:
        made.append(name)
        return own_hit(name, *args, **kwargs)

    monkeypatch.setattr(rate_counter, "hit", counted)
    yield made


def count_of(counter: str) -> int:
    value: Any = get_broker().client.get(counter)
    return int(value or 0)


def submit_counter() -> str:
    """The submit counter of the test's one token's user."""
    return rate_counter.key("throttle", "submit", str(ApiToken.objects.get().user_id))


def test_a_remembered_token_counts_its_submit_once_in_the_checks_round_trip(broker: Any, hits: list[str]) -> None:
    key = valid_token()
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {key}")
    with rates(submit="100/min"):
        statuses = [client.post("/api/v1/jobs", SEED_JOB, format="json").status_code for _ in range(5)]
    assert statuses == [201] * 5
    counter = submit_counter()
    assert count_of(counter) == 5  # once a request, not twice
    # The first request's token was not remembered yet: its throttle hit on its own. The other four were
    # counted along with the token's check.
    assert hits.count(counter) == 1, hits


def test_the_submit_limit_stays_exact_under_32_threads(broker: Any) -> None:
    key, limit, per_thread, threads = valid_token(), 40, 4, 32
    APIClient(HTTP_AUTHORIZATION=f"Bearer {key}").get("/api/v1/")  # the token remembered before the race
    with rates(submit=f"{limit}/min"):
        statuses = hammered(
            key, lambda client: client.post("/api/v1/jobs", SEED_JOB, format="json").status_code, threads, per_thread
        )
    assert statuses == {201: limit, 429: threads * per_thread - limit}, statuses
    assert Job.objects.count() == limit


def test_a_token_revoked_by_another_process_is_refused_and_its_guess_counted_once(broker: Any) -> None:
    key = valid_token()
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {key}")
    with rates(submit="100/min"):
        assert client.post("/api/v1/jobs", SEED_JOB, format="json").status_code == 201  # remembered now
        counter, token = submit_counter(), ApiToken.objects.get()
        # Another process deletes the token: the database row goes, and the generation changes; this process
        # still holds its fresh entry (a process that deleted it would have forgotten it at once).
        ApiToken.objects.filter(pk=token.pk)._raw_delete(ApiToken.objects.db)
        auth_generation.replace(broker)
        assert token_memory.likely_user(digest(key)) is not None
        refused = client.post("/api/v1/jobs", SEED_JOB, format="json")
    assert refused.status_code == 401
    assert count_of(counter) == 2  # the accepted submit, and the guess made for the refused one
    assert Job.objects.count() == 1


def test_a_grpc_submit_with_a_remembered_token_is_counted_once(grpc_server: GrpcServer, hits: list[str]) -> None:
    stub = stub_for(grpc_server, new_user())
    with rates(submit="100/min"):
        assert all(stub.SubmitJob(pb.SubmitJobRequest(job=pb.JobSpec(type="test_noop"))).created for _ in range(3))
    counter = submit_counter()
    assert count_of(counter) == 3
    assert hits.count(counter) == 1, hits


def test_a_batch_body_is_read_after_the_token_is_confirmed(broker: Any) -> None:
    """Only a single submit is counted ahead of the token's check: a batch's cost is its body's jobs, and
    its body is read only once the token is confirmed. A token revoked elsewhere is refused before a
    malformed body is looked at, and its batch costs nothing."""
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {valid_token()}")
    with rates(batch="100/min"):
        assert client.post("/api/v1/jobs/batch", {"jobs": [SEED_JOB, SEED_JOB]}, format="json").status_code == 201
        malformed = client.post("/api/v1/jobs/batch", b"{not json", content_type="application/json")
        token = ApiToken.objects.get()
        counter = rate_counter.key("throttle", "batch", str(token.user_id))
        ApiToken.objects.filter(pk=token.pk)._raw_delete(ApiToken.objects.db)  # revoked by another process
        auth_generation.replace(broker)
        refused = [
            client.post("/api/v1/jobs/batch", b"{not json", content_type="application/json"),
            client.post("/api/v1/jobs/batch", {"jobs": [SEED_JOB, SEED_JOB]}, format="json"),
        ]
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "malformed_json", malformed.content
    assert [answer.status_code for answer in refused] == [401, 401]
    assert count_of(counter) == 2  # the first batch's two jobs; nothing for the refused ones
