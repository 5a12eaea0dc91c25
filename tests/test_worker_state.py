"""A worker process's state in one object: its transitions, and the parts that share it.

The fetcher, the executor, the recorder and the keeper are built here around one
:class:`~workers.state.WorkerState`, without a worker process, on the real Redis and PostgreSQL:
each acts on the jobs the others hold through that state alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import connections

from jobs import client, states
from jobs.broker import Broker
from jobs.models import Job, Status
from tests.helpers import wait_for
from workers.execution import Running, prepare
from workers.executor import Executor
from workers.fetcher import Fetcher
from workers.keeper import Keeper
from workers.recorder import Recorder
from workers.selection import parse_queues
from workers.state import WorkerOptions, WorkerState


def new_state(slots: int, max_jobs: int = 0) -> WorkerState:
    options = WorkerOptions("w-state-test", parse_queues("default"), slots, poll_interval=0.2, max_jobs=max_jobs)
    return WorkerState(options)


def hold(state: WorkerState, job: Job | None = None) -> Running:
    """A job as the executor starts it: prepared, and holding a slot of ``state``."""
    running = prepare(job or Job(type="test_noop", queue="default"), state.worker_id, 30.0)
    state.take_slot(running)
    return running


def test_a_job_frees_its_slot_when_its_processor_returns_but_is_held_until_recorded() -> None:
    state = new_state(slots=2)
    first, second = hold(state), hold(state)
    assert state.free_slots() == 0 and state.busy() == 2

    state.free_slot()  # the first job's processor returned; its ending is on its way to the database
    assert state.free_slots() == 1 and state.busy() == 2
    assert state.unreleased() == [first, second]  # its lease is still renewed until it is recorded

    state.slot_freed.clear()
    state.forget([first])
    assert state.busy() == 1 and state.find(first.ctx.job_id) is None
    assert state.slot_freed.is_set(), "forgetting a job must wake the fetcher"


def test_a_max_jobs_budget_caps_the_slots_and_stops_the_process_once_its_last_job_is_recorded() -> None:
    state = new_state(slots=4, max_jobs=2)
    assert state.free_slots() == 2
    first, second = hold(state), hold(state)
    state.free_slot()
    state.free_slot()
    assert state.free_slots() == 0  # slots free, budget spent: nothing more is claimed

    state.forget([first])
    assert not state.stopping.is_set(), "a recycle must wait for the last job held"
    state.forget([second])
    assert state.stopping.is_set() and not state.urgent.is_set()


def test_a_first_stop_signal_drains_and_a_second_hands_back_at_once() -> None:
    state = new_state(slots=1)
    state.stop_signalled()
    assert state.stopping.is_set() and not state.urgent.is_set() and state.slot_freed.is_set()
    assert state.going
    state.stop_signalled()
    assert state.urgent.is_set()


def test_going_away_hands_back_only_the_jobs_that_have_not_ended() -> None:
    state = new_state(slots=3)
    ended, recorded_here, left = hold(state), hold(state), hold(state)
    ended.ended = True  # its ending is on its way to the database: recorded, not handed back

    assert state.release_unended(recorded_here={id(recorded_here)}) == [left]

    assert left.released and not ended.released and not recorded_here.released
    assert state.unreleased() == [ended, recorded_here]


def closing_connections(target: Callable[[], None]) -> Callable[[], None]:
    """A thread body that closes the thread's database connection when it ends."""

    def body() -> None:
        try:
            target()
        finally:
            connections.close_all()

    return body


@pytest.mark.django_db(transaction=True)
def test_the_fetcher_executor_and_recorder_share_one_state_from_claim_to_count(broker: Broker) -> None:
    state = new_state(slots=2)
    recorder = Recorder(state, broker)
    fetcher = Fetcher(state, broker, Executor(state, recorder))
    threads = [
        threading.Thread(target=closing_connections(recorder.run), name="recorder", daemon=True),
        threading.Thread(target=closing_connections(fetcher.run), name="fetcher", daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        jobs = [client.enqueue("test_noop", {"n": n}) for n in range(3)]
        wait_for(lambda: state.processed == 3, 10, message="three jobs recorded and counted on the shared state")
        assert state.failed == 0 and state.busy() == 0 and state.free_slots() == 2
        assert set(Job.objects.filter(pk__in=[j.pk for j in jobs]).values_list("status", flat=True)) == {
            Status.COMPLETED
        }
        assert broker.ids("default") == {"ready": set(), "delayed": set(), "leases": set()}
    finally:
        state.request_stop()
        threads[1].join(5)
        recorder.close()
        threads[0].join(5)
    assert not any(thread.is_alive() for thread in threads), "the fetcher and the recorder must stop when asked"


@pytest.mark.django_db(transaction=True)
def test_the_keeper_delivers_a_cancel_to_a_job_the_shared_state_holds(broker: Broker) -> None:
    state = new_state(slots=1)
    recorder = Recorder(state, broker)
    keeper = Keeper(state, broker, Executor(state, recorder), recorder)
    job = client.enqueue("test_noop", {})
    assert broker.claim("default", state.worker_id, 1, state.lease_ms).ids == [str(job.pk)]
    [claimed] = states.claim([str(job.pk)], state.worker_id)
    running = hold(state, claimed)

    keeper.check_cancellations()
    assert not running.ctx.cancelled
    client.cancel(job.pk)  # a running job: its cancellation is requested in the database
    keeper.check_cancellations()

    assert running.ctx.cancelled and running.ctx.cancel_reason == "cancelled"
