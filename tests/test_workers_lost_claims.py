"""Claims the database lost or never answered: the worker puts those jobs back itself (F15).

The claim commits without waiting for the WAL flush, so a crash of PostgreSQL can undo it while
the job runs; and a connection can break after the claim committed but before its answer came.
Either way the row must not be left without a Redis entry until the scheduler's reconciler comes.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from jobs import client, recovery, states
from jobs.broker import Broker, Settlement
from jobs.models import Job, JobAttempt, Outcome, Status
from tests.helpers import wait_for
from tests.procs import running

pytestmark = pytest.mark.django_db(transaction=True)


def claim_one(broker: Broker, token: str, **extra: object) -> Job:
    job = client.enqueue("test_noop", {}, **extra)
    assert broker.claim("default", token, 1, 60_000).ids == [str(job.pk)]
    [claimed] = states.claim([str(job.pk)], token)
    return claimed


def test_a_claim_whose_answer_was_lost_is_handed_back_uncharged(broker: Broker) -> None:
    job = claim_one(broker, "w1")
    broker.settle("default", "w1", [Settlement(str(job.pk), "release")])  # what the worker does on the error
    broker.claim("default", "w2", 1, 60_000)  # another worker takes the id, finds the row running,
    broker.settle("default", "w2", [Settlement(str(job.pk), "ack")])  # and drops it
    assert broker.ids("default") == {"ready": set(), "delayed": set(), "leases": set()}

    [released] = recovery.hand_back_unstarted(broker, [str(job.pk)], "w1")

    assert released.pk == job.pk
    row = Job.objects.get(pk=job.pk)
    assert (row.status, row.attempts, row.worker) == (Status.PENDING, 0, "")
    assert broker.ids("default")["ready"] == {str(job.pk)}


def test_handing_back_leaves_rows_of_other_workers_and_finished_rows_alone(broker: Broker) -> None:
    other = claim_one(broker, "w2")
    done = claim_one(broker, "w1")
    now = done.started_at
    states.record([states.AttemptResult(done, Outcome.COMPLETED, now, now, 0.0)])  # type: ignore[arg-type]

    assert recovery.hand_back_unstarted(broker, [str(other.pk), str(done.pk), "garbage"], "w1") == []

    assert Job.objects.get(pk=other.pk).status == Status.RUNNING
    assert Job.objects.get(pk=done.pk).status == Status.COMPLETED


def test_a_finish_on_a_claim_the_database_lost_requeues_the_row(broker: Broker) -> None:
    job = claim_one(broker, "w1")
    Job.objects.filter(pk=job.pk).update(status=Status.PENDING, attempts=0, worker="", started_at=None)
    now = job.started_at
    [stale] = states.record([states.AttemptResult(job, Outcome.COMPLETED, now, now, 0.0)])  # type: ignore[arg-type]
    assert stale.status is None
    broker.settle("default", "w1", [Settlement(str(job.pk), "ack")])

    assert [j.pk for j in recovery.requeue_lost_claims(broker, [job])] == [job.pk]

    assert broker.ids("default") == {"ready": {str(job.pk)}, "delayed": set(), "leases": set()}
    assert not JobAttempt.objects.filter(job=job).exists()


def test_a_finish_on_a_reclaimed_row_does_not_requeue_it(broker: Broker) -> None:
    job = claim_one(broker, "w1", retry={"max_retries": 3, "backoff": "fixed", "initial_delay": "1h"})
    broker.settle("default", "w1", [Settlement(str(job.pk), "ack")])
    lost = states.record_lost(str(job.pk), "w1", "lease expired")  # the reclaimer's part
    assert lost is not None and lost.status == Status.RETRYING

    assert recovery.requeue_lost_claims(broker, [job]) == []
    assert broker.ids("default") == {"ready": set(), "delayed": set(), "leases": set()}


@pytest.mark.slow
def test_a_running_job_whose_claim_the_database_lost_runs_again(broker: Broker, tmp_path: Path) -> None:
    job = client.enqueue("test_sleep", {"seconds": 1.0})
    with running(["runworkers", "--processes", "1", "--concurrency", "2"], tmp_path) as pool:
        wait_for(lambda: Job.objects.get(pk=job.pk).status == Status.RUNNING, 20, message="the job started")
        # As after a crash that lost the claim's commit: the row is back where it was before it.
        Job.objects.filter(pk=job.pk).update(status=Status.PENDING, attempts=0, worker="", started_at=None)
        wait_for(lambda: "requeued jobs whose claim the database lost" in pool.log(), 20, message="the requeue")
        wait_for(lambda: Job.objects.get(pk=job.pk).status == Status.COMPLETED, 20, message="the second run")
        pool.signal(signal.SIGTERM)
        assert pool.wait(20) == 0
    row = Job.objects.get(pk=job.pk)
    assert row.attempts == 1
    assert list(JobAttempt.objects.filter(job=job).values_list("outcome", flat=True)) == [Outcome.COMPLETED]
    assert broker.ids("default") == {"ready": set(), "delayed": set(), "leases": set()}
