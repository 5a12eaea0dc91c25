"""The gRPC server's database connections between calls (jobs/grpc/calls.py).

A thread's connection that ended its previous call cleanly less than ``TRUSTED_FOR`` ago serves the next
call without Django's health check (a ``SELECT 1`` before every call under load); one idle for longer is
checked first. What the trust costs is bounded: a connection that broke in that window fails the one call
that finds it broken (UNAVAILABLE, as any call meeting a lost database), and the next call has a new one.

The server runs in this process with one thread, so consecutive calls share its connection, kept between
calls (``CONN_MAX_AGE`` 60); the connection is ended after each test, as it would hold the test database open.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
import pytest
from django.db import connection

from jobs.grpc import calls
from tests.grpc_support import GrpcServer, call_error, new_user, pb, serving, stub_for

pytestmark = pytest.mark.django_db(transaction=True)

JOB = pb.SubmitJobRequest(job=pb.JobSpec(type="send_email", payload=json.dumps({"email": "user@example.com"})))


def end_other_sessions() -> int:
    """Terminate every other session on the test database (the server thread's); how many there were."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        row = cursor.fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def one_thread_server(broker: object) -> Iterator[GrpcServer]:
    try:
        with serving(threads=1, conn_max_age=60) as served:
            yield served
    finally:
        end_other_sessions()


def test_a_connection_used_a_moment_ago_is_not_checked_so_its_breaking_fails_one_call(
    one_thread_server: GrpcServer,
) -> None:
    stub = stub_for(one_thread_server, new_user())
    assert stub.SubmitJob(JOB).created  # the token verified and remembered; the connection kept, trusted
    assert end_other_sessions() == 1, "the server's thread should hold one connection between calls"
    # No SELECT 1 first: the INSERT meets the dead connection, as a database lost mid-call would.
    assert call_error(stub.SubmitJob, JOB).code() == grpc.StatusCode.UNAVAILABLE
    assert stub.SubmitJob(JOB).created  # the broken connection was dropped after that call


def test_a_connection_idle_past_the_trust_is_checked_and_replaced_before_the_call(
    one_thread_server: GrpcServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(calls, "TRUSTED_FOR", 0.0)  # every connection has been idle too long
    stub = stub_for(one_thread_server, new_user())
    assert stub.SubmitJob(JOB).created
    assert end_other_sessions() == 1
    assert stub.SubmitJob(JOB).created  # Django's health check found it dead and connected again
