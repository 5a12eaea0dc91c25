"""A job's context: cancellation seen through the flag, check() and the event, whichever comes first."""

from __future__ import annotations

import threading
import time

import pytest

from jobs.registry import Context, JobCancelled


def make() -> Context:
    return Context(job_id="x", attempt=1, deadline=time.monotonic() + 30)


def test_a_cancel_before_anyone_asked_for_the_event_leaves_it_set() -> None:
    ctx = make()
    ctx.cancel("cancelled")
    assert ctx.cancelled and ctx.cancel_event.is_set()
    with pytest.raises(JobCancelled, match="cancelled"):
        ctx.check()


def test_a_cancel_wakes_a_job_waiting_on_the_event() -> None:
    ctx = make()
    woke = threading.Event()

    def job() -> None:
        if ctx.cancel_event.wait(30):
            woke.set()

    waiter = threading.Thread(target=job)
    waiter.start()
    ctx.cancel("timeout")  # before or after the job asked for the event: either way it wakes
    assert woke.wait(5), "the waiting job was not woken by the cancel"
    waiter.join(5)
    assert ctx.cancel_reason == "timeout"


def test_the_first_reason_wins() -> None:
    ctx = make()
    ctx.cancel("timeout")
    ctx.cancel("cancelled")
    assert ctx.cancel_reason == "timeout"
    assert not make().cancelled
