"""Workflows (docs/workflows.md): many jobs with dependencies created in one request, all or none;
their refs, cycles and limits refused naming the job and the field; ``chain`` and ``group``; a
workflow read back with its status and counters; a child's ``ctx.parent_results``; retention and
the reconciler leave a live workflow alone."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from jobs import client, dependencies, service
from jobs.broker import Broker
from jobs.lifecycle import Status
from jobs.models import Job, JobDependency, Workflow
from jobs.validation import InvalidJob
from scheduler import reconcile, retention
from tests.helpers import run_attempt

pytestmark = pytest.mark.django_db(transaction=True)

DAY = 86400.0


def noop(ref: str, *parents: str, **extra: Any) -> dict[str, Any]:
    job: dict[str, Any] = {"ref": ref, "type": "test_noop", "payload": {"ref": ref}, **extra}
    if parents:
        job["depends_on"] = list(parents)
    return job


def by_ref(flow: Workflow) -> dict[str, Job]:
    return {job.workflow_ref: job for job in Job.objects.filter(workflow=flow)}


def ready_ids(broker: Any) -> set[str]:
    return {i.decode() for i in broker.client.zrange(broker.keys("default").ready, 0, -1)}


def test_a_diamond_is_created_in_one_go_and_only_its_root_is_dispatched(broker: Broker) -> None:
    flow = client.workflow([noop("a"), noop("b", "a"), noop("c", "a"), noop("d", "b", "c")], name="diamond")
    jobs = by_ref(flow)
    assert {ref: j.status for ref, j in jobs.items()} == {
        "a": "pending",
        "b": "waiting",
        "c": "waiting",
        "d": "waiting",
    }
    assert ready_ids(broker) == {str(jobs["a"].pk)}
    edges = set(JobDependency.objects.values_list("child_id", "parent_id"))
    a, b, c, d = (jobs[r].pk for r in "abcd")
    assert edges == {(b, a), (c, a), (d, b), (d, c)}
    run_attempt(jobs["a"], "completed", result={"from": "a"})
    assert ready_ids(broker) == {str(a), str(b), str(c)}, "a's id stays: the test claimed it by hand"
    run_attempt(jobs["b"], "completed", result={"from": "b"})
    assert Job.objects.get(pk=d).status == Status.BLOCKED, "d waits for c too"
    run_attempt(jobs["c"], "completed", result={"from": "c"})
    assert Job.objects.get(pk=d).status == Status.PENDING
    results = dependencies.parent_results(d)
    assert results == {"b": {"from": "b"}, "c": {"from": "c"}, str(b): {"from": "b"}, str(c): {"from": "c"}}


def test_the_api_creates_and_reads_a_workflow(api: Any, broker: Broker) -> None:
    body = {"name": "thumbs", "jobs": [noop("resize"), noop("notify", "resize", name="tell")]}
    created = api.post("/api/v1/workflows", body, format="json")
    assert created.status_code == 201, created.content
    flow = created.json()
    assert flow["status"] == "running" and flow["counts"]["total"] == 2 and flow["counts"]["waiting"] == 1
    assert [j["ref"] for j in flow["jobs"]] == ["resize", "notify"], "in the order submitted"
    assert flow["jobs"][1]["depends_on"] == [flow["jobs"][0]["id"]]
    listed = api.get("/api/v1/jobs?status=waiting").json()["results"]
    assert [j["id"] for j in listed] == [flow["jobs"][1]["id"]], "blocked jobs are listed by their state"
    run_attempt(Job.objects.get(pk=flow["jobs"][0]["id"]), "completed")
    run_attempt(Job.objects.get(pk=flow["jobs"][1]["id"]), "completed")
    read = api.get(f"/api/v1/workflows/{flow['id']}").json()
    assert read["status"] == "completed" and read["counts"]["completed"] == 2
    assert api.get("/api/v1/workflows/00000000-0000-4000-8000-000000000000").status_code == 404
    assert api.get("/api/v1/workflows/nope").status_code == 404


def test_a_failed_parent_fails_the_workflow_and_cancels_what_waits(broker: Broker) -> None:
    flow = client.workflow([noop("a"), noop("b", "a"), noop("c", "a", on_parent_failure="run")])
    jobs = by_ref(flow)
    run_attempt(jobs["a"], "failed", error="boom")
    view = service.get_workflow(flow.pk)
    states = {j.workflow_ref: j.status for j in view.jobs}
    assert states == {"a": "failed", "b": "cancelled", "c": "pending"} and view.status == "running"
    run_attempt(jobs["c"], "completed")
    assert service.get_workflow(flow.pk).status == "failed"


def refused(jobs: Any) -> InvalidJob:
    with pytest.raises(InvalidJob) as caught:
        client.workflow(jobs)
    return caught.value


def test_bad_workflows_are_refused_naming_the_job_and_the_field(api: Any, broker: Broker) -> None:
    ghost = "00000000-0000-4000-8000-000000000000"
    cycle = refused([noop("a", "c"), noop("b", "a"), noop("c", "b"), noop("z")])
    assert cycle.field.startswith("jobs[") and cycle.field.endswith("].depends_on") and "cycle" in cycle.message
    assert "'a'" in cycle.message and "'b'" in cycle.message and "'c'" in cycle.message
    assert refused([noop("a", "a")]).field == "jobs[0].depends_on"
    unknown = refused([noop("a"), noop("b", "nope")])
    assert unknown.field == "jobs[1].depends_on[0]" and "no ref" in unknown.message
    assert refused([noop("a"), noop("a")]).field == "jobs[1].ref"
    assert refused([noop("a", ghost)]).field == "jobs[0].depends_on"
    assert refused([noop("a", *[f"p{i}" for i in range(1001)])]).field == "jobs[0].depends_on"
    assert refused([noop(str(i)) for i in range(10_001)]).field == "jobs"
    assert refused([noop("a"), {"ref": "b", "type": "nope"}]).field == "jobs[1].type"
    assert refused([noop("a", idempotency_key="k")]).field == "jobs[0].idempotency_key"
    answer = api.post("/api/v1/workflows", {"jobs": [noop("a", "b"), noop("b", "a")]}, format="json")
    assert answer.status_code == 400 and "jobs[0].depends_on" in answer.json()["error"]["details"], answer.content
    answer = api.post("/api/v1/jobs", {"type": "test_noop", "depends_on": [ghost]}, format="json")
    assert answer.status_code == 400 and "depends_on" in answer.json()["error"]["details"], answer.content
    assert api.post("/api/v1/workflows", {"jobs": [], "x": 1}, format="json").status_code == 400
    assert not Job.objects.exists() and not Workflow.objects.exists(), "all or none"


def test_chain_and_group_build_the_shapes(broker: Broker) -> None:
    shape = client.chain(noop("a"), client.group(noop("b"), noop("c")), {"type": "test_noop"})
    assert [j.get("depends_on", []) for j in shape] == [[], ["a"], ["a"], ["b", "c"]]
    flow = client.workflow(shape)
    assert Job.objects.filter(workflow=flow).count() == 4
    assert JobDependency.objects.count() == 4


def test_a_workflow_may_depend_on_stored_jobs(broker: Broker) -> None:
    done = client.enqueue("test_noop", {}, name="seed")
    run_attempt(done, "completed", result=7)
    flow = client.workflow([noop("a", str(done.pk)), noop("b", "a", str(done.pk))])
    jobs = by_ref(flow)
    assert jobs["a"].status == Status.PENDING, "its only parent had ended: settled at submit"
    assert jobs["b"].status == Status.BLOCKED
    assert dependencies.parent_results(jobs["a"].pk) == {"seed": 7, str(done.pk): 7}


def test_a_thousand_job_workflow_is_accepted_in_one_request(api: Any, broker: Broker) -> None:
    jobs = [noop("root")] + [noop(f"j{i}", "root") for i in range(999)]
    started = time.perf_counter()
    answer = api.post("/api/v1/workflows", {"jobs": jobs}, format="json")
    elapsed = time.perf_counter() - started
    assert answer.status_code == 201 and answer.json()["counts"]["waiting"] == 999
    assert elapsed < 5, f"{elapsed:.2f}s (bench/workflow_bench.py measures the 1 s target)"


def test_retention_keeps_what_a_live_workflow_needs(broker: Broker) -> None:
    flow = client.workflow([noop("a"), noop("b", "a"), noop("c", "b")])
    jobs = by_ref(flow)
    run_attempt(jobs["a"], "completed")
    loose = client.enqueue("test_noop", {})
    run_attempt(loose, "completed")
    Job.objects.update(completed_at=timezone.now() - timedelta(days=30))
    report = retention.purge(completed_age=7 * DAY, failed_age=30 * DAY, batch=100)
    assert report.total == 1 and not Job.objects.filter(pk=loose.pk).exists()
    assert Job.objects.filter(pk=jobs["a"].pk).exists(), "b still needs a"
    run_attempt(jobs["b"], "completed")
    run_attempt(jobs["c"], "completed")
    Job.objects.update(completed_at=timezone.now() - timedelta(days=30))
    assert retention.purge(completed_age=7 * DAY, failed_age=30 * DAY, batch=100).total == 3, "ended: all go"


def test_a_rebuild_after_a_redis_flush_never_dispatches_a_blocked_job(broker: Broker) -> None:
    flow = client.workflow([noop("a"), noop("b", "a")])
    jobs = by_ref(flow)
    broker.client.delete(broker.keys("default").ready)
    report = reconcile.rebuild(broker, owner="test", lease_ttl=30, batch=100)
    assert report is not None
    assert ready_ids(broker) == {str(jobs["a"].pk)}, "only the root: b is blocked"
    later = timezone.now() + timedelta(hours=1)
    reconcile.reconcile(broker, grace=0, lease_ttl=30, batch=100, now=later)
    assert ready_ids(broker) == {str(jobs["a"].pk)}


def test_the_dashboard_and_the_admin_link_parents_children_and_the_workflow(broker: Broker) -> None:
    from django.contrib.auth.models import User
    from django.test import Client

    browser = Client()
    browser.force_login(User.objects.create_superuser("wf-admin"))
    flow = client.workflow([noop("a"), noop("b", "a"), noop("c", "b")], name="steps")
    jobs = by_ref(flow)
    run_attempt(jobs["a"], "failed", error="boom")
    page = browser.get(f"/dashboard/workflows/{flow.pk}/").content.decode()
    assert 'data-testid="workflow-status">failed<' in page
    depths = [int(d) for d in re.findall(r'data-depth="(\d+)"', page)]
    assert depths == [0, 1, 2], "each job indented under its parent"
    assert ">blocked<" not in page and page.count(">cancelled<") == 2 and f"parent {jobs['a'].pk} failed" in page
    b_page = browser.get(f"/dashboard/jobs/{jobs['b'].pk}/").content.decode()
    assert f"/dashboard/jobs/{jobs['a'].pk}/" in b_page and f"/dashboard/jobs/{jobs['c'].pk}/" in b_page
    assert f"/dashboard/workflows/{flow.pk}/" in b_page
    blocked = client.enqueue("test_noop", {}, depends_on=[str(client.enqueue("test_noop", {}).pk)])
    assert '">blocked</span>' in browser.get(f"/dashboard/jobs/{blocked.pk}/").content.decode()
    admin_page = browser.get(f"/admin/jobs/job/{jobs['b'].pk}/change/").content.decode()
    assert f"/admin/jobs/job/{jobs['a'].pk}/change/" in admin_page and f"/dashboard/workflows/{flow.pk}/" in admin_page
    assert ">blocked</strong>" in browser.get(f"/admin/jobs/job/{blocked.pk}/change/").content.decode()
    assert browser.get("/dashboard/workflows/00000000-0000-4000-8000-000000000000/").status_code == 404


def test_a_job_read_over_rest_shows_its_parents_batch_and_workflow(api: Any, broker: Broker) -> None:
    flow = client.workflow([noop("a"), noop("b", "a", on_parent_failure="run")])
    a, b = by_ref(flow)["a"], by_ref(flow)["b"]
    child = api.get(f"/api/v1/jobs/{b.pk}").json()
    assert child["depends_on"] == [str(a.pk)] and child["on_parent_failure"] == "run"
    assert child["workflow"] == str(flow.pk) and child["batch"] is None
    root = api.get(f"/api/v1/jobs/{a.pk}").json()
    assert root["depends_on"] == [] and root["on_parent_failure"] == "cancel"
    batch = service.create_batch("tied", open=True)
    body = {"type": "test_noop", "batch": str(batch.pk), "depends_on": [str(a.pk)]}
    created = api.post("/api/v1/jobs", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["batch"] == str(batch.pk) and created.json()["depends_on"] == [str(a.pk)]
    assert created.json()["workflow"] is None
