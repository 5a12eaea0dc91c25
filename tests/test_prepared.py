"""The hot path's statements are prepared on PostgreSQL, and only when the setting allows it."""

from __future__ import annotations

import pytest
from django.db import connection
from django.utils import timezone

from jobs import client, states
from jobs.models import Outcome, Status
from jobs.states import AttemptResult
from tests.helpers import override_zipline

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements are PostgreSQL's"),
]


def run_one_job() -> None:
    """Enqueue, claim and finish one job: the three statements of the hot path."""
    job = client.enqueue("test_noop")
    [claimed] = states.claim([str(job.pk)], "w1")
    now = timezone.now()
    attempt = AttemptResult(claimed, Outcome.COMPLETED, now, now, 0.001, result={"ok": True})
    [recorded] = states.record([attempt])
    assert recorded.status == Status.COMPLETED


def prepared_statements(full: bool = False) -> list[str]:
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] if full else row[0].split()[0] for row in cursor.fetchall()]


def test_hot_statements_are_prepared_once_and_reused() -> None:
    connection.close()  # a new session: nothing prepared yet
    run_one_job()
    run_one_job()
    assert sorted(prepared_statements()) == ["INSERT", "UPDATE", "WITH"]


def test_a_claim_of_several_jobs_is_planned_for_its_ids() -> None:
    """A generic plan of ``id = ANY($1)`` may scan every waiting row by status; it is not prepared."""
    connection.close()
    jobs = [client.enqueue("test_noop") for _ in range(3)]
    claimed = states.claim([str(job.pk) for job in jobs], "w1")
    assert sorted(job.pk for job in claimed) == sorted(job.pk for job in jobs)
    assert not [text for text in prepared_statements(full=True) if "ANY(" in text]


def test_prepared_statements_can_be_turned_off_for_a_pooler() -> None:
    connection.close()
    with override_zipline(database_prepared_statements=False):
        run_one_job()
    assert prepared_statements() == []


def test_a_statement_the_server_lost_is_run_again_on_a_new_connection() -> None:
    """A pooler that dropped the session's statements, or a migration that changed a returned
    column, breaks a prepared statement; psycopg would go on sending it on that connection."""
    run_one_job()
    broken = connection.connection
    broken.pgconn.exec_(b"DEALLOCATE ALL")  # behind psycopg's back: it still thinks they exist
    run_one_job()
    assert connection.connection is not broken
    assert sorted(prepared_statements()) == ["INSERT", "UPDATE", "WITH"]


def test_a_finish_that_breaks_inside_its_transaction_runs_again_on_a_new_connection() -> None:
    """The finish statement runs in a transaction with the endings it sets off (jobs.endings), where
    a broken statement cannot be retried in place: the whole transaction is run again, once."""
    run_one_job()
    job = client.enqueue("test_noop")
    [claimed] = states.claim([str(job.pk)], "w1")
    broken = connection.connection
    broken.pgconn.exec_(b"DEALLOCATE ALL")  # the finish statement, prepared before, is gone
    now = timezone.now()
    [recorded] = states.record([AttemptResult(claimed, Outcome.COMPLETED, now, now, 0.001)])
    assert recorded.status == Status.COMPLETED
    assert connection.connection is not broken


def test_a_chain_step_release_is_prepared_and_its_generic_plan_finds_rows_by_their_primary_key() -> None:
    """``release_children`` runs once per chain step: prepared, with a generic plan (not knowing how many
    ids it is given) that reaches the children's rows by their primary key, never by scanning the blocked
    rows through the status index nor the whole table."""
    from jobs import enqueue_many, release_sql, workflow
    from jobs.models import Job

    enqueue_many([{"type": "test_noop"} for _ in range(2000)])
    flow = workflow(
        [{"ref": f"s{i}", "type": "test_noop", **({"depends_on": [f"s{i - 1}"]} if i else {})} for i in range(300)]
    )
    first = Job.objects.get(workflow=flow, workflow_ref="s0")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_job")
        cursor.execute("ANALYZE jobs_jobdependency")
    connection.close()
    [claimed] = states.claim([str(first.pk)], "w1")
    now = timezone.now()
    states.record([AttemptResult(claimed, Outcome.COMPLETED, now, now, 0.001)])
    assert Job.objects.get(workflow=flow, workflow_ref="s1").status == Status.PENDING
    assert [text for text in prepared_statements(full=True) if text.startswith("WITH c AS")]
    sql = release_sql._RELEASE_CHILDREN_PG
    for n in range(1, sql.count("%s") + 1):
        sql = sql.replace("%s", f"${n}", 1)
    when = now.isoformat()
    params = ["{" + str(first.pk) + "}", "waiting", when, "scheduled", "pending", when, when, "waiting", "completed"]
    with connection.cursor() as cursor:
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE release_plan AS {sql}")
        cursor.execute(f"EXPLAIN EXECUTE release_plan({', '.join(['%s'] * len(params))})", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("DEALLOCATE release_plan")
        cursor.execute("RESET plan_cache_mode")
    assert "jobs_job_pkey" in plan, plan
    assert "job_status_created" not in plan and "Seq Scan on jobs_job " not in plan, plan


def test_the_hot_paths_timestamps_are_read_in_c_and_equal_what_django_reads() -> None:
    """The hot path's cursor reads ``timestamptz`` with psycopg's compiled loader, not Django's Python
    subclass of it: a job claimed alone (a prepared claim) and a job claimed with another (unprepared)
    carry the times the ORM reads, aware and in UTC."""
    from datetime import UTC

    from django.db import connections
    from psycopg import pq

    from jobs.models import Job
    from jobs.prepared import _CURSOR_ATTRIBUTE

    alone = client.enqueue("test_noop")
    states.claim([str(alone.pk)], "w1")
    pair = [client.enqueue("test_noop") for _ in range(2)]
    claimed = states.claim([str(job.pk) for job in pair], "w1") + states.claim([], "w1")
    cursor = connections["default"].__dict__[_CURSOR_ATTRIBUTE]
    loader = cursor.adapters.get_loader(cursor.adapters.types["timestamptz"].oid, pq.Format.TEXT)
    assert loader.__module__.endswith("._psycopg"), loader  # compiled: psycopg_binary or psycopg_c
    assert len(claimed) == 2
    for job in claimed:
        stored = Job.objects.get(pk=job.pk)  # through Django's cursor and loader
        for name in ("created_at", "updated_at", "started_at"):
            value = getattr(job, name)
            assert value == getattr(stored, name) and value.tzinfo is UTC, (name, value)
