"""Dependencies (docs/workflows.md): a job with parents waits blocked (stored ``waiting``) until they
have all ended, then is released to pending in the transaction of the last parent's ending, or
cancelled with the reason when a parent failed and its policy is "cancel". Every path that ends a
job releases: the recorder, a lost attempt, a cancel, an expiry, a deletion; and a child submitted
after its parents ended is settled at submit."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from jobs import client, endings, expiry, service, states
from jobs.broker import Broker
from jobs.lifecycle import Status
from jobs.models import Job, JobDependency
from jobs.validation import InvalidJob
from tests.helpers import run_attempt, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def status(job: Job) -> str:
    return Job.objects.values_list("status", flat=True).get(pk=job.pk)


def in_ready(broker: Broker, job: Job) -> bool:
    return broker.client.zscore(broker.keys(job.queue).ready, str(job.pk)) is not None


def test_a_child_waits_blocked_and_out_of_redis_until_its_parent_completes(broker: Broker) -> None:
    parent = client.enqueue("test_noop", {})
    child = client.enqueue("test_noop", {}, depends_on=[str(parent.pk)])
    assert child.status == Status.BLOCKED == "waiting" and Status.BLOCKED.label == "Blocked"
    assert not in_ready(broker, child), "a blocked job is never in Redis"
    assert states.claim([str(child.pk)], "w:1:x") == [], "a worker never runs a blocked job"
    run_attempt(parent, "completed", result={"n": 1})
    assert status(child) == Status.PENDING
    assert in_ready(broker, child), "released ids reach Redis on commit"


def test_the_last_of_several_parents_releases_and_reasons_are_recorded(broker: Broker) -> None:
    a, b = client.enqueue("test_noop", {}), client.enqueue("test_noop", {})
    cancel_child = client.enqueue("test_noop", {}, depends_on=[str(a.pk), str(b.pk)])
    run_child = client.enqueue("test_noop", {}, depends_on=[str(a.pk), str(b.pk)], on_parent_failure="run")
    run_attempt(a, "completed")
    assert status(cancel_child) == status(run_child) == Status.BLOCKED, "b has not ended"
    run_attempt(b, "failed", error="boom")
    row = Job.objects.get(pk=cancel_child.pk)
    assert row.status == Status.CANCELLED and row.error == f"cancelled: parent {b.pk} failed"
    assert row.completed_at is not None
    assert status(run_child) == Status.PENDING, 'on_parent_failure "run" runs anyway'


def test_a_cancelled_child_cascades_to_its_own_children(broker: Broker) -> None:
    a = client.enqueue("test_noop", {})
    b = client.enqueue("test_noop", {}, depends_on=[str(a.pk)])
    c = client.enqueue("test_noop", {}, depends_on=[str(b.pk)])
    service.cancel(a.pk)
    assert status(a) == status(b) == status(c) == Status.CANCELLED
    assert Job.objects.get(pk=c.pk).error == f"cancelled: parent {b.pk} cancelled"


def test_expiry_deletion_and_a_lost_attempt_release_children(broker: Broker) -> None:
    expiring = client.enqueue("test_noop", {}, expires_in="1m")
    deleted = client.enqueue("test_noop", {})
    lost = client.enqueue("test_noop", {}, retry={"max_retries": 0})
    kids = [
        client.enqueue("test_noop", {}, depends_on=[str(p.pk)], on_parent_failure="run")
        for p in (expiring, deleted, lost)
    ]
    assert expiry.expire_due(timezone.now() + timedelta(minutes=2), 100)
    service.delete_jobs(Job.objects.filter(pk=deleted.pk))
    states.claim([str(lost.pk)], "w:1:x")
    assert states.record_lost(str(lost.pk), "w:1:x", "lost to the worker (signal 9)") is not None
    assert [status(k) for k in kids] == [Status.PENDING] * 3


def test_a_child_of_ended_parents_is_settled_at_submit(broker: Broker) -> None:
    done, failed = client.enqueue("test_noop", {}), client.enqueue("test_noop", {})
    run_attempt(done, "completed")
    run_attempt(failed, "failed", error="x")
    ready = client.enqueue("test_noop", {}, depends_on=[str(done.pk)])
    assert ready.status == Status.PENDING and in_ready(broker, ready)
    doomed = client.enqueue("test_noop", {}, depends_on=[str(done.pk), str(failed.pk)])
    assert doomed.status == Status.CANCELLED and doomed.error == f"cancelled: parent {failed.pk} failed"
    [many] = service.submit_many([{"type": "test_noop", "depends_on": [str(done.pk)]}])
    assert many.status == Status.PENDING


def test_bad_depends_on_is_refused_naming_the_field(broker: Broker) -> None:
    ghost = "00000000-0000-4000-8000-000000000000"
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"depends_on": [ghost]}, "depends_on", "does not exist"),
        ({"depends_on": ["nope"]}, "depends_on[0]", "not a job id"),
        ({"depends_on": "x"}, "depends_on", "must be a list"),
        ({"depends_on": [ghost] * 1001}, "depends_on", "at most 1000"),
        ({"on_parent_failure": "maybe"}, "on_parent_failure", "not one of"),
    ]
    for options, field, words in cases:
        with pytest.raises(InvalidJob) as caught:
            client.enqueue("test_noop", {}, **options)
        assert caught.value.field == field and words in caught.value.message, (options, caught.value)
    with pytest.raises(InvalidJob) as caught:
        service.submit_many([{"type": "test_noop"}, {"type": "test_noop", "depends_on": [ghost]}])
    assert caught.value.field == "jobs[1].depends_on"
    assert not Job.objects.exists(), "nothing of a refused submission is written"


def _finish_at_once(jobs: list[Job]) -> list[BaseException]:
    """Record each job's completion in its own thread and transaction, both open before either ends."""
    barrier = threading.Barrier(len(jobs), timeout=10)
    errors: list[BaseException] = []

    def finish(job: Job) -> None:
        try:
            now = timezone.now()
            with transaction.atomic():
                barrier.wait()
                states.record([states.AttemptResult(job, "completed", now, now, 0.0)])
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=finish, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
        assert not t.is_alive(), "a finishing thread is stuck"
    return errors


def test_two_parents_ending_at_once_release_the_child_exactly_once(broker: Broker) -> None:
    """One of the two transactions waits for the child's lock and then sees the other's ending."""
    for _ in range(5):
        a, b = client.enqueue("test_noop", {}), client.enqueue("test_noop", {})
        child = client.enqueue("test_noop", {}, depends_on=[str(a.pk), str(b.pk)])
        claimed = states.claim([str(a.pk), str(b.pk)], "w:1:x")
        broker.client.delete(broker.keys("default").ready)  # the parents' ids: claimed by hand here
        assert _finish_at_once(claimed) == []
        assert status(child) == Status.PENDING
        ready = broker.client.zrange(broker.keys("default").ready, 0, -1)
        assert ready == [str(child.pk).encode()], "pushed once"


def test_the_hook_is_one_query_for_jobs_without_children(broker: Broker, django_assert_num_queries: object) -> None:
    jobs = [client.enqueue("test_noop", {}) for _ in range(3)]
    assert not JobDependency.objects.exists()
    with transaction.atomic(), django_assert_num_queries(1):  # type: ignore[operator]
        endings.after_jobs_ended([j.pk for j in jobs])


def test_recording_jobs_without_children_costs_only_the_finish_statement(
    broker: Broker, django_assert_num_queries: object
) -> None:
    """The finish statement returns each job's batch and children mark: no lookup follows it."""
    parent = client.enqueue("test_noop", {})
    child = client.enqueue("test_noop", {}, depends_on=[str(parent.pk)])
    plain = states.claim([str(client.enqueue("test_noop", {}).pk) for _ in range(3)], "w:1:x")
    assert Job.objects.get(pk=parent.pk).has_children and not any(job.has_children for job in plain)
    now = timezone.now()
    with django_assert_num_queries(3):  # type: ignore[operator] # BEGIN, the finish statement, COMMIT
        states.record([states.AttemptResult(job, "completed", now, now, 0.0) for job in plain])
    run_attempt(parent, "completed")
    assert status(child) == Status.PENDING, "a parent's mark is read, and its child released"


def _blocked_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        return bool(cursor.fetchone()[0])


def _in_thread(work: Any, hold: threading.Event | None = None) -> tuple[threading.Thread, list[Any]]:
    """Run ``work`` in a transaction of its own thread, committed once ``hold`` is set."""
    out: list[Any] = []

    def run() -> None:
        try:
            with transaction.atomic():
                out.append(work())
                if hold is not None:
                    assert hold.wait(20), "never released"
        except BaseException as exc:  # noqa: BLE001 - the test reads it
            out.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


@pytest.mark.parametrize("first", ["parent ends", "child submitted"])
def test_a_child_submitted_while_its_parent_ends_is_never_stranded(broker: Broker, first: str) -> None:
    """Whichever of the two transactions holds the parent's row first, the other waits for its commit
    and then sees it: the child ends up pending, never blocked for good."""
    parent = client.enqueue("test_noop", {})
    [claimed] = states.claim([str(parent.pk)], "w:1:x")
    now = timezone.now()
    end = lambda: states.record([states.AttemptResult(claimed, "completed", now, now, 0.0)])  # noqa: E731
    submit = lambda: client.enqueue("test_noop", {}, depends_on=[str(parent.pk)])  # noqa: E731
    hold = threading.Event()
    holder, held = _in_thread(end if first == "parent ends" else submit, hold)
    wait_for(lambda: bool(held), 10, message="the first transaction did its work")
    waiter, waited = _in_thread(submit if first == "parent ends" else end)
    wait_for(_blocked_on_a_lock, 10, message="the second transaction waits for the parent's row")
    hold.set()
    holder.join(20)
    waiter.join(20)
    outputs = [*held, *waited]
    assert not [o for o in outputs if isinstance(o, BaseException)], outputs
    [child] = [Job.objects.get(pk=o.pk) for o in outputs if isinstance(o, Job)]
    assert child.status == Status.PENDING
    assert in_ready(broker, child)


def test_a_submission_chosen_as_a_deadlocks_victim_is_written_again(broker: Broker) -> None:
    """A recorder ends parent B, then A, while a submission of their child locks A, then B: PostgreSQL
    breaks the deadlock by rolling the submission back (it waited first), and the submission is written
    again once the other commits: the caller gets its job, never an error."""
    a, b = sorted((client.enqueue("test_noop", {}) for _ in range(2)), key=lambda job: job.pk)
    b_locked, go_on = threading.Event(), threading.Event()

    def recorder_like() -> int:
        Job.objects.filter(pk=b.pk).update(updated_at=timezone.now())
        b_locked.set()
        assert go_on.wait(20), "never told to go on"
        return Job.objects.filter(pk=a.pk).update(updated_at=timezone.now())  # closes the cycle

    ender, ended = _in_thread(recorder_like)
    assert b_locked.wait(10)
    result: list[Any] = []

    def submit() -> None:
        try:
            result.append(client.enqueue("test_noop", {}, depends_on=[str(a.pk), str(b.pk)]))
        except BaseException as exc:  # noqa: BLE001 - the test reads it
            result.append(exc)
        finally:
            connection.close()

    child_thread = threading.Thread(target=submit)
    child_thread.start()
    wait_for(_blocked_on_a_lock, 10, message="the submission waits for parent B")
    go_on.set()
    ender.join(30)
    child_thread.join(30)
    assert ended == [1], ended
    assert len(result) == 1 and isinstance(result[0], Job), result
    assert status(result[0]) == Status.BLOCKED
    assert set(JobDependency.objects.filter(child_id=result[0].pk).values_list("parent_id", flat=True)) == {a.pk, b.pk}
