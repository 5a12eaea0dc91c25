"""The benchmark's measuring parts that need no benchmark run: the enqueue floor writes what ``enqueue``
writes, the latency floor claims ZipLine's row with ZipLine's scripts and statement, the CPU report's
per-job arithmetic, and the py-spy summary."""

from __future__ import annotations

import os

import pytest

from bench.cpu_per_job import Snapshot, per_job
from bench.pyspy_summary import summary, worker_profiles


@pytest.mark.django_db(transaction=True)
def test_the_enqueue_floor_commits_the_same_row_and_makes_the_same_push_as_enqueue(broker: object) -> None:
    from django.db import connection

    from bench.enqueue_floor import EnqueueFloor
    from jobs import enqueue
    from jobs.models import Job

    model = enqueue("test_noop", {"n": 1}, priority=3)
    db = connection.settings_dict
    floor = EnqueueFloor(
        f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}", os.environ["JQS_REDIS_URL"], str(model.pk)
    )
    try:
        floor.enqueue(3)
    finally:
        floor.close()
    copies = list(Job.objects.exclude(pk=model.pk))
    assert len(copies) == 3
    for copy in copies:
        assert (copy.type, copy.queue, copy.payload, copy.status, copy.priority) == (
            "test_noop",
            "default",
            {"n": 1},
            model.status,
            3,
        )
        assert copy.created_at > model.created_at
    claimed = broker.claim("default", "worker-1", 10, 30_000).ids  # type: ignore[attr-defined]
    assert sorted(claimed) == sorted(str(job.pk) for job in [model, *copies])


@pytest.mark.django_db(transaction=True)
def test_the_path_floor_claims_zipline_s_own_row_through_its_scripts_and_its_claim_statement(broker: object) -> None:
    from django.db import connection

    from bench.path_floor import PathFloor

    db = connection.settings_dict
    floor = PathFloor(f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}", job_type="test_noop")
    try:
        times = floor.times(5, 0.002)
        rows = floor.client.pg.execute("SELECT type, queue, status, attempts, worker FROM jobs_job").fetchall()
    finally:
        floor.close()
    assert len(times) == 5 and all(0 < t < 10_000 for t in times)
    assert rows == [("test_noop", floor.queue, "running", 1, "floor-worker")] * 5
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'zipline_floor'")
        assert cursor.fetchone() == (0,)


def snapshot(done: int, at: float, cpu: float, polls: int, gets: int, statement_calls: int) -> Snapshot:
    return Snapshot(
        done=done,
        at=at,
        pool_cpu=cpu,
        pg_cpu=cpu / 2,
        pg_backends_cpu=cpu / 4,
        redis_cpu=cpu / 10,
        commands={"get": (gets, gets), "incrby": (done, 2 * done), "info": (9, 9)},
        statements={"42": ("UPDATE jobs_job SET status = $1", statement_calls, statement_calls * 0.05, 2 * done)},
        polls=polls,
    )


def test_cpu_per_job_counts_only_the_jobs_between_the_snapshots_and_leaves_out_the_script_s_own_commands() -> None:
    first = snapshot(done=10, at=100.0, cpu=1.0, polls=5, gets=5, statement_calls=10)
    last = snapshot(done=1010, at=102.0, cpu=1.2, polls=105, gets=105 + 500, statement_calls=1010)
    found = per_job(first, last)
    assert found["jobs"] == 1000 and found["jobs_per_s"] == pytest.approx(500)
    assert found["pool_us"] == pytest.approx(200) and found["pg_us"] == pytest.approx(100)
    assert found["total_us"] == pytest.approx(200 + 100 + 20)
    assert found["commands"]["get"]["calls"] == pytest.approx(0.5)  # the 100 polls are the script's
    assert found["commands"]["incrby"] == {"calls": 1.0, "redis_us": 2.0}
    assert "info" not in found["commands"]
    assert found["statements"]["UPDATE jobs_job SET status = $1"] == pytest.approx(
        {"calls": 1.0, "exec_us": 50.0, "rows": 2.0}
    )


def test_cpu_per_job_refuses_a_drain_where_no_job_finished_between_the_snapshots() -> None:
    still = snapshot(done=10, at=100.0, cpu=1.0, polls=5, gets=5, statement_calls=10)
    with pytest.raises(RuntimeError, match="no job finished"):
        per_job(still, still)


RAW = """\
process 10:"python manage.py runworkers";<module> (manage.py:42);setup (django/__init__.py:16) 7
process 10:"python manage.py runworkers";process 11:"python manage.py runworkers";run (workers/executor.py:80);format (zipline_site/logs.py:30) 6
process 10:"python manage.py runworkers";process 11:"python manage.py runworkers";run (workers/executor.py:80);execute (psycopg/cursor.py:97) 3
process 10:"python manage.py runworkers";process 11:"python manage.py runworkers";run (workers/executor.py:81) 1
process 10:"python manage.py runworkers";process 12:"python manage.py runworkers";run (workers/executor.py:80);execute (psycopg/cursor.py:97) 2
process 10:"python manage.py runworkers";process 12:"python manage.py runworkers" 4
"""


def test_the_profile_summary_takes_the_busiest_worker_and_its_innermost_frames() -> None:
    profiles = worker_profiles(RAW)
    assert [(p.pid, p.samples) for p in profiles] == [
        (11, 10),
        (12, 2),
    ]  # the supervisor's stacks and frameless samples are left out
    busiest = profiles[0]
    assert busiest.functions.most_common(1) == [("format (zipline_site/logs.py)", 6)]
    assert busiest.packages == {"zipline_site": 6, "psycopg": 3, "workers": 1}
    text = "\n".join(summary(busiest))
    assert "worker process 11, 10 samples" in text and " 60.0%  format (zipline_site/logs.py)" in text
