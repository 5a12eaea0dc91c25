"""F06, scaled down for CI: a rolling-restart storm on a running pool.

The fault matrix's row: SIGTERM a random worker every 10 s for 5 min while 20 s jobs run; every job
completes, none is stranded, and recovery stays within L + R (lease TTL + reclaim interval) instead
of waiting for a slow sweep (Sidekiq #4635, #4937: a restarted worker's jobs stranded for an hour).

Here: three worker processes with two slots each and a scheduler; SIGTERM one worker child (never
the supervisor) every 2 s for 20 s while 3 s jobs ("long", longer than the 1 s shutdown grace: handed
back uncharged) and 0.4 s jobs ("short": they finish within the grace) run. Evidence comes from the
job rows, their attempt rows, a Redis ledger each job run writes (``tests/procapp/processors.py``:
start and end, with pid and wall time) and the processes' JSON logs.

The scheduler's reconciler (which would, much later, put back a stranded pending row) runs only at
start (poll interval 120 s), so it cannot hide a job the hand-back failed to requeue; a lease left
behind would be reclaimed and charged as lost, which the attempt checks catch.
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import pytest

from jobs import client
from jobs.broker import Broker
from jobs.models import Job, JobAttempt, Outcome, Status
from tests.helpers import wait_for
from tests.procs import Proc, running, wait_for_workers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

PROCESSES = 3
CONCURRENCY = 6  # two slots per process
GRACE = 1.0  # JQS_WORKER_SHUTDOWN_TIMEOUT
LONG = 3.0  # longer than the grace: a TERMed worker hands it back
SHORT = 0.4  # shorter than the grace: a TERMed worker lets it finish
LEASE_TTL = 5.0  # L
RECLAIM_INTERVAL = 1.0  # R
STORM = 20.0
PERIOD = 2.0
PICK_WAIT = 1.0  # how long a tick looks for a worker running the kind of job it aims at
LOW_WATER = 8  # keep at least this many jobs pending through the storm, so every slot stays busy
ENV = {
    "JQS_WORKER_SHUTDOWN_TIMEOUT": f"{GRACE}s",
    "JQS_WORKER_LEASE_TTL": f"{LEASE_TTL}s",
    "JQS_SCHEDULER_RECLAIM_INTERVAL": f"{RECLAIM_INTERVAL}s",
    "JQS_SCHEDULER_POLL_INTERVAL": "120s",
}


@dataclass(frozen=True)
class Entry:
    """One line of the ledger: a job run starting or ending in a worker process."""

    job_id: str
    attempt: int
    pid: int
    event: str
    at: float
    tag: str


@dataclass(frozen=True)
class Term:
    pid: int
    at: float
    aimed_at: str  # "long", "short", or "any" when no worker ran the kind aimed at


def ledger(broker: Broker, key: str) -> list[Entry]:
    out = []
    for raw in cast(list[bytes], broker.client.lrange(key, 0, -1)):
        job_id, attempt, pid, event, at, tag = raw.decode().split("|")
        out.append(Entry(job_id, int(attempt), int(pid), event, float(at), tag))
    return out


def in_flight(entries: list[Entry]) -> dict[int, list[Entry]]:
    """Per pid, the runs that started and have not ended (as far as the ledger knows)."""
    ended = {(e.job_id, e.pid) for e in entries if e.event == "end"}
    running_now: dict[int, list[Entry]] = defaultdict(list)
    for e in entries:
        if e.event == "start" and (e.job_id, e.pid) not in ended:
            running_now[e.pid].append(e)
    return running_now


def log_time(line: dict[str, Any]) -> float:
    return datetime.fromisoformat(line["time"]).timestamp()


def enqueue_batch(key: str, jobs: list[Job]) -> None:
    for _ in range(2):
        jobs.append(client.enqueue("test_sleep", {"seconds": LONG, "key": key, "tag": "long"}))
        jobs.append(client.enqueue("test_sleep", {"seconds": SHORT, "key": key, "tag": "short"}))
        jobs.append(client.enqueue("test_sleep", {"seconds": SHORT, "key": key, "tag": "short"}))


def pick_victim(broker: Broker, pool: Proc, key: str, termed: set[int], aim: str, rng: random.Random) -> Term:
    """A live worker child not TERMed yet, preferably one running a job of the kind ``aim``.

    "long": a long job that started lately enough to outlast the grace (so it is handed back);
    "short": any short job (it should finish within the grace).
    """
    from jobs.broker.heartbeat import live_workers

    deadline = time.monotonic() + PICK_WAIT
    while True:
        children = set(pool.children())
        eligible = sorted(w["pid"] for w in live_workers(broker) if w["pid"] in children and w["pid"] not in termed)
        now = time.time()
        aimed = []
        for pid, runs in in_flight(ledger(broker, key)).items():
            if pid not in eligible:
                continue
            if aim == "long" and any(r.tag == "long" and now - r.at < LONG - GRACE - 0.7 for r in runs):
                aimed.append(pid)
            if aim == "short" and any(r.tag == "short" for r in runs):
                aimed.append(pid)
        if aimed:
            return Term(rng.choice(sorted(aimed)), time.time(), aim)
        if eligible and time.monotonic() > deadline:
            return Term(rng.choice(eligible), time.time(), "any")
        if time.monotonic() > deadline + 10:
            raise AssertionError(f"no live worker to TERM; children {children}\n{pool.log()[-3000:]}")
        time.sleep(0.01)


def test_rolling_restart_storm_strands_nothing_and_charges_no_attempt(broker: Broker, tmp_path: Path) -> None:
    """F06: every job completes, on its first charged attempt, and a handed-back job restarts within L + R."""
    key = f"{broker.prefix}:ledger-{uuid.uuid4().hex[:8]}"
    rng = random.Random(6)
    jobs: list[Job] = []
    terms: list[Term] = []
    started = time.monotonic()
    with (
        running(
            ["runworkers", "--processes", str(PROCESSES), "--concurrency", str(CONCURRENCY)],
            tmp_path,
            "workers",
            **ENV,
        ) as pool,
        running(["runscheduler"], tmp_path, "scheduler", **ENV) as scheduler,
    ):
        wait_for(broker.epoch_present, 20, message=f"scheduler up\n{scheduler.log()[-2000:]}")
        wait_for_workers(broker, PROCESSES, proc=pool)
        enqueue_batch(key, jobs)
        enqueue_batch(key, jobs)

        # The storm. Its pacing is a timed loop; everything after it waits on events.
        storm_start = time.monotonic()
        for tick in range(int(STORM / PERIOD)):
            while Job.objects.filter(status=Status.PENDING).count() < LOW_WATER:
                enqueue_batch(key, jobs)
            time.sleep(max(0.0, storm_start + (tick + 1) * PERIOD - PICK_WAIT - time.monotonic()))
            term = pick_victim(broker, pool, key, {t.pid for t in terms}, "long" if tick % 2 == 0 else "short", rng)
            os.kill(term.pid, signal.SIGTERM)
            terms.append(Term(term.pid, time.time(), term.aimed_at))
        storm_end = time.monotonic()

        ids = [j.pk for j in jobs]

        def unfinished() -> dict[str, int]:
            rows = Job.objects.filter(pk__in=ids).exclude(status=Status.COMPLETED).values_list("status", flat=True)
            counts: dict[str, int] = defaultdict(int)
            for status in rows:
                counts[status] += 1
            return dict(counts)

        wait_for(lambda: not unfinished(), 30, 0.1, message=f"every job completed (left: {unfinished()})")
        tail = time.monotonic() - storm_end

        # The pool is back to its size, and only live workers are registered (no TERMed one's heartbeat).
        def back_to_size() -> bool:
            registered = cast(list[bytes], broker.client.zrange(broker.workers_key, 0, -1))
            children = pool.children()
            return len(children) == PROCESSES and len(registered) == PROCESSES

        wait_for(back_to_size, 10, message=f"{PROCESSES} worker processes again\n{pool.log()[-3000:]}")
        from jobs.broker.heartbeat import live_workers

        assert {w["pid"] for w in live_workers(broker)} == set(pool.children())

        # Redis holds no lease, no token and no queued id: nothing left over for a sweep.
        def redis_clean() -> list[str]:
            leftovers = []
            for suffix in ("leases", "tokens", "ready", "delayed"):
                leftovers += [k.decode() for k in broker.client.scan_iter(match=f"{broker.prefix}:*:{suffix}")]
            return leftovers

        wait_for(lambda: not redis_clean(), 5, message=f"no leases or ids left in Redis: {redis_clean()}")
        assert broker.queue_names() == {"default"}
        assert broker.ids("default") == {"ready": set(), "delayed": set(), "leases": set()}

        pool.signal(signal.SIGTERM)
        assert pool.wait(20) == 0
        pool_log, scheduler_log = pool.records(), scheduler.records()
        scheduler_text = scheduler.log()
    elapsed = time.monotonic() - started

    # -- the storm happened as intended ------------------------------------------------------------
    assert len(terms) == STORM / PERIOD, terms
    assert len({t.pid for t in terms}) == len(terms)  # each TERM hit a different (fresh) process

    # -- every job completed on its first charged attempt: hand-backs were not charged ----------------
    rows = {str(j.pk): j for j in Job.objects.filter(pk__in=ids)}
    assert len(rows) == len(jobs) and Job.objects.count() == len(jobs)
    assert {j.status for j in rows.values()} == {Status.COMPLETED}
    assert {j.attempts for j in rows.values()} == {1}
    attempts = list(JobAttempt.objects.filter(job_id__in=ids).values_list("job_id", "number", "outcome"))
    assert sorted(str(a[0]) for a in attempts) == sorted(rows)  # exactly one attempt row per job
    assert {(a[1], a[2]) for a in attempts} == {(1, Outcome.COMPLETED)}

    # -- the ledger: who ran what, when ---------------------------------------------------------------
    entries = ledger(broker, key)
    assert {e.attempt for e in entries} == {1}  # a re-run after a hand-back is still attempt 1
    term_of = {t.pid: t for t in terms}
    runs: dict[str, list[Entry]] = defaultdict(list)
    ends: dict[tuple[str, int], Entry] = {}
    for e in entries:
        if e.event == "start":
            runs[e.job_id].append(e)
        else:
            ends[(e.job_id, e.pid)] = e
    assert set(runs) == set(rows)

    latencies: list[float] = []
    handed_back: dict[int, int] = defaultdict(int)
    for job_id, starts in runs.items():
        starts.sort(key=lambda e: e.at)
        tag = starts[0].tag
        for cut, rerun in zip(starts, starts[1:], strict=False):
            hit = term_of.get(cut.pid)
            # Only a TERMed worker hands a job back, only a long one, and only after the grace.
            assert hit is not None, f"job {job_id} restarted though its worker {cut.pid} was never TERMed"
            assert tag == "long", f"short job {job_id} was handed back instead of finishing within the grace"
            assert (job_id, cut.pid) not in ends, f"job {job_id} ran to its end on {cut.pid} and ran again"
            assert cut.at < hit.at + 0.5 and rerun.pid != cut.pid
            latency = rerun.at - hit.at
            assert GRACE - 0.05 <= latency <= LEASE_TTL + RECLAIM_INTERVAL, (job_id, latency)
            latencies.append(latency)
            handed_back[cut.pid] += 1
        last = starts[-1]
        assert (job_id, last.pid) in ends, f"job {job_id}'s last run on {last.pid} never ended"

    # Jobs running in a TERMed worker that finished within the grace, in that worker.
    drained: dict[str, int] = defaultdict(int)
    for (_job_id, pid), end in ends.items():
        hit = term_of.get(pid)
        if hit is not None and end.at > hit.at:
            assert end.at <= hit.at + GRACE + 0.5, (end, hit)
            drained[end.tag] += 1
    assert len(latencies) >= 3, (handed_back, terms)
    assert drained["short"] >= 1, (drained, terms)

    # -- the processes' own account -------------------------------------------------------------------
    exits = {line["pid"]: line for line in pool_log if line.get("message") == "worker process exited"}
    spawned = [line for line in pool_log if line.get("message") == "worker process started"]
    for term in terms:
        gone = exits.get(term.pid)
        assert gone is not None, f"TERMed worker {term.pid} never exited"
        assert gone["how"] == "exit code 0", gone
        assert log_time(gone) - term.at <= GRACE + 2.0, (gone, term)  # the grace, then out
    assert len(spawned) == PROCESSES + len(terms)  # each one replaced, nothing else restarted
    messages = {line.get("message") for line in pool_log + scheduler_log}
    assert "recovered a dead worker's jobs" not in messages  # nothing left for the supervisor to charge
    assert "reclaimed expired lease" not in messages and "attempt lost to its worker" not in messages
    assert "Traceback" not in pool.log() and "Traceback" not in scheduler_text

    print(
        f"\nF06 storm: {len(terms)} TERMs (aimed {[t.aimed_at for t in terms]}), {len(jobs)} jobs, "
        f"{len(latencies)} hand-backs, "
        f"{dict(drained)} finished within the grace; recovery latency TERM->restart "
        f"min {min(latencies):.3f}s median {statistics.median(latencies):.3f}s max {max(latencies):.3f}s "
        f"(grace {GRACE}s, bound L+R {LEASE_TTL + RECLAIM_INTERVAL}s); tail after the storm {tail:.1f}s; "
        f"total {elapsed:.1f}s"
    )
