"""The Django admin: job list and page, every bulk action with its refusals, queues, tokens, paging."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from jobs import client, states
from jobs.admin_paginator import EstimatedCountPaginator, capped_count, is_unfiltered, table_estimate
from jobs.broker import Broker
from jobs.models import ApiToken, Job, Outcome, QueueState, Status
from jobs.tokens import find_token
from tests.helpers import run_attempt

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/jobs/job/"


# -- helpers --------------------------------------------------------------------------------------------


def staff(perms: tuple[str, ...] = (), superuser: bool = False) -> Client:
    account = User.objects.create_user(f"op-{uuid.uuid4().hex[:8]}", is_staff=True, is_superuser=superuser)
    for codename in perms:
        account.user_permissions.add(Permission.objects.get(codename=codename, content_type__app_label="jobs"))
    browser = Client()
    browser.force_login(account)
    return browser


@pytest.fixture
def admin(broker: Broker) -> Client:
    return staff(superuser=True)


run = run_attempt


def running(job: Job) -> Job:
    states.claim([str(job.pk)], "host:1:abc")
    return Job.objects.get(pk=job.pk)


def act(browser: Client, action: str, jobs: list[Job], **extra: str) -> tuple[Any, list[str]]:
    """Run an admin action on ``jobs`` from the job list; returns the final response and its messages."""
    data = {"action": action, "index": "0", "_selected_action": [str(j.pk) for j in jobs], **extra}
    response = browser.post(CHANGELIST, data, follow=True)
    return response, [str(m) for m in response.context["messages"]] if response.context else []


def statuses(*jobs: Job) -> list[str]:
    rows = {j.pk: j.status for j in Job.objects.filter(pk__in=[j.pk for j in jobs])}
    return [rows.get(j.pk, "deleted") for j in jobs]


def short(job: Job) -> str:
    return str(job.pk)[:8]


# -- the list ---------------------------------------------------------------------------------------------


def test_job_list_columns_filters_and_newest_first(admin: Client) -> None:
    old = client.enqueue("test_noop", {}, name="older", queue="q-one", priority=5)
    new = run(client.enqueue("test_fail", {}, name="newer", queue="q-two"), error="RuntimeError: boom")
    html = admin.get(CHANGELIST).content.decode()
    for column in (
        "column-short_id",
        "column-name",
        "column-type",
        "column-queue",
        "column-status_display",
        "column-priority",
        "column-attempts_display",
        "column-created",
        "column-duration_display",
    ):
        assert column in html, column
    assert html.index('class="field-name">newer<') < html.index('class="field-name">older<')
    for parameter in ("?status__exact=failed", "?queue=q-one", "?queue=q-two", "?type=test_noop", "?created_at__gte="):
        assert parameter in html, parameter
    assert 'field-attempts_display">1 / 4<' in html  # attempts of the most there can be
    assert re.search(r'field-duration_display">\d+ ms<', html)
    filtered = admin.get(CHANGELIST, {"status__exact": "failed"}).content.decode()
    assert short(new) in filtered and short(old) not in filtered
    filtered = admin.get(CHANGELIST, {"queue": "q-one", "type": "test_noop"}).content.decode()
    assert short(old) in filtered and short(new) not in filtered


def test_search_by_id_prefix_full_id_and_name(admin: Client) -> None:
    a = client.enqueue("test_noop", {}, name="welcome-email")
    b = client.enqueue("test_noop", {}, name="invoice")
    for term, hit, miss in ((short(a), a, b), (str(b.pk), b, a), ("WELCOME", a, b)):
        html = admin.get(CHANGELIST, {"q": term}).content.decode()
        assert f"/admin/jobs/job/{hit.pk}/change/" in html and f"/admin/jobs/job/{miss.pk}/change/" not in html, term


def test_list_never_counts_the_whole_table_nor_scans_for_filter_values(admin: Client) -> None:
    for n in range(3):
        client.enqueue("test_noop", {}, queue=f"q{n}")
    with CaptureQueriesContext(connection) as queries:
        assert admin.get(CHANGELIST).status_code == 200
        assert admin.get(CHANGELIST, {"status__exact": "pending"}).status_code == 200
    on_jobs = [q["sql"] for q in queries.captured_queries if '"jobs_job"' in q["sql"]]
    counts = [sql for sql in on_jobs if "COUNT(" in sql.upper()]
    assert counts and all("LIMIT" in sql.upper() for sql in counts), counts
    assert not [sql for sql in on_jobs if "DISTINCT" in sql.upper()]
    # The list does not load the payloads.
    listing = [sql for sql in on_jobs if '"jobs_job"."created_at" DESC' in sql]
    assert listing and all('"payload"' not in sql for sql in listing)


# -- the page of a job ----------------------------------------------------------------------------------------


def test_job_page_shows_json_error_traceback_and_attempts(admin: Client) -> None:
    job = client.enqueue("test_noop", {"email": "a@example.com", "items": [1, 2]}, retry={"max_retries": 1})
    job = run(job, error="ValueError: bad address", permanent=False)
    Job.objects.filter(pk=job.pk).update(status=Status.PENDING)
    job = run(job, Outcome.COMPLETED, result={"delivered": True})
    html = admin.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
    assert "&quot;email&quot;: &quot;a@example.com&quot;" in html and "&quot;items&quot;: [\n    1," in html
    assert "&quot;delivered&quot;: true" in html
    assert "ValueError: bad address" in html and "Traceback (most recent call last)" in html  # in the attempts
    assert html.count('class="field-number_display"') >= 2  # two attempts inline
    assert f"/dashboard/jobs/{job.pk}/" in html
    assert 'name="_save"' not in html  # view only


def test_a_job_cannot_be_added_or_edited_by_hand(admin: Client) -> None:
    job = client.enqueue("test_noop", {}, delay="1h")
    assert admin.get("/admin/jobs/job/add/").status_code == 403
    response = admin.post(f"/admin/jobs/job/{job.pk}/change/", {"status": "completed", "priority": 9, "name": "x"})
    assert response.status_code == 403
    row = Job.objects.get(pk=job.pk)
    assert (row.status, row.priority, row.name) == (Status.SCHEDULED, 0, "")


# -- actions ----------------------------------------------------------------------------------------------------


def test_cancel_reports_changed_and_refused(admin: Client, broker: Broker) -> None:
    pending = client.enqueue("test_noop", {}, queue="acts")
    scheduled = client.enqueue("test_noop", {}, queue="acts", delay="1h")
    done = run(client.enqueue("test_noop", {}), Outcome.COMPLETED, result=1)
    busy = running(client.enqueue("test_noop", {}))
    _, notes = act(admin, "cancel_jobs", [pending, scheduled, done, busy])
    assert "Cancelled 2 jobs." in notes
    assert f"Could not cancel 1 job: {short(done)} (completed)." in notes
    assert "Asked 1 running job to stop; they end cancelled when their code returns." in notes
    assert statuses(pending, scheduled, done, busy) == ["cancelled", "cancelled", "completed", "running"]
    assert Job.objects.get(pk=busy.pk).cancel_requested
    history = LogEntry.objects.filter(change_message="Cancelled (admin action)")
    assert sorted(history.values_list("object_id", flat=True)) == sorted(str(j.pk) for j in (pending, scheduled, busy))
    ids = broker.ids("acts")
    assert str(pending.pk) not in ids["ready"] and str(scheduled.pk) not in ids["delayed"]


def test_cancel_of_only_finished_jobs_is_an_error(admin: Client) -> None:
    done = run(client.enqueue("test_noop", {}), Outcome.COMPLETED, result=1)
    failed = run(client.enqueue("test_noop", {}), error="RuntimeError: x")
    response, notes = act(admin, "cancel_jobs", [done, failed])
    assert len(notes) == 1 and notes[0].startswith("Could not cancel 2 jobs: ")
    assert f"{short(done)} (completed)" in notes[0] and f"{short(failed)} (failed)" in notes[0]
    assert 'class="error"' in response.content.decode()
    assert statuses(done, failed) == ["completed", "failed"]


def test_retry_reports_changed_and_refused(admin: Client, broker: Broker) -> None:
    failed = run(client.enqueue("test_noop", {}, queue="acts"), error="RuntimeError: x")
    cancelled = client.cancel(client.enqueue("test_noop", {}, queue="acts").pk)
    pending = client.enqueue("test_noop", {}, queue="other")
    _, notes = act(admin, "retry_jobs", [failed, cancelled, pending])
    assert notes == ["Retried 2 jobs.", f"Could not retry 1 job: {short(pending)} (pending)."]
    assert statuses(failed, cancelled, pending) == ["pending", "pending", "pending"]
    assert {str(failed.pk), str(cancelled.pk)} <= broker.ids("acts")["ready"]
    assert Job.objects.get(pk=failed.pk).attempts == 0


def test_run_now_reports_changed_and_refused(admin: Client, broker: Broker) -> None:
    scheduled = client.enqueue("test_noop", {}, queue="acts", delay="1h")
    retrying = run(client.enqueue("test_noop", {}, queue="acts"), error="RuntimeError: x", permanent=False)
    done = run(client.enqueue("test_noop", {}), Outcome.COMPLETED, result=1)
    _, notes = act(admin, "run_jobs_now", [scheduled, retrying, done])
    assert notes == ["Made due now: 2 jobs.", f"Could not run now 1 job: {short(done)} (completed)."]
    assert statuses(scheduled, retrying, done) == ["pending", "pending", "completed"]
    ids = broker.ids("acts")
    assert str(scheduled.pk) in ids["ready"] and str(scheduled.pk) not in ids["delayed"]


def test_delete_confirms_then_deletes_and_refuses_running_jobs(admin: Client, broker: Broker) -> None:
    waiting = client.enqueue("test_noop", {}, queue="acts")
    failed = run(client.enqueue("test_noop", {}), error="RuntimeError: x")
    busy = running(client.enqueue("test_noop", {}))
    response, notes = act(admin, "delete_selected", [waiting, failed, busy])
    html = response.content.decode()
    assert "Are you sure you want to delete the selected jobs?" in html  # the confirmation page
    assert f"Could not delete 1 job: {short(busy)} (running); cancel running jobs first." in html
    assert statuses(waiting, failed, busy) == ["pending", "failed", "running"]
    selected = re.findall(r'name="_selected_action" value="([^"]+)"', html)
    assert sorted(selected) == sorted([str(waiting.pk), str(failed.pk)])
    response = admin.post(
        CHANGELIST, {"action": "delete_selected", "post": "yes", "_selected_action": selected}, follow=True
    )
    notes = [str(m) for m in response.context["messages"]]
    assert "Successfully deleted 2 jobs." in notes
    assert statuses(waiting, failed, busy) == ["deleted", "deleted", "running"]
    assert str(waiting.pk) not in broker.ids("acts")["ready"]


def test_delete_of_only_running_jobs_is_refused_outright(admin: Client) -> None:
    busy = running(client.enqueue("test_noop", {}))
    _, notes = act(admin, "delete_selected", [busy])
    assert notes == [f"Could not delete 1 job: {short(busy)} (running); cancel running jobs first."]
    assert statuses(busy) == ["running"]
    page = admin.get(f"/admin/jobs/job/{busy.pk}/change/").content.decode()
    assert f"/admin/jobs/job/{busy.pk}/delete/" not in page
    assert admin.post(f"/admin/jobs/job/{busy.pk}/delete/", {"post": "yes"}).status_code == 403


def test_delete_one_job_from_its_page(admin: Client, broker: Broker) -> None:
    job = client.enqueue("test_noop", {}, queue="acts", delay="1h")
    response = admin.post(f"/admin/jobs/job/{job.pk}/delete/", {"post": "yes"}, follow=True)
    assert response.status_code == 200 and statuses(job) == ["deleted"]
    assert str(job.pk) not in broker.ids("acts")["delayed"]


def test_actions_apply_to_every_filtered_job_with_select_across(admin: Client) -> None:
    jobs = [client.enqueue("test_noop", {}, queue="bulk", delay="1h") for _ in range(5)]
    keep = client.enqueue("test_noop", {}, queue="elsewhere", delay="1h")
    response = admin.post(
        f"{CHANGELIST}?queue=bulk",
        {"action": "cancel_jobs", "index": "0", "select_across": "1", "_selected_action": [str(jobs[0].pk)]},
        follow=True,
    )
    assert "Cancelled 5 jobs." in [str(m) for m in response.context["messages"]]
    assert statuses(*jobs, keep) == ["cancelled"] * 5 + ["scheduled"]


def test_actions_need_the_change_or_delete_permission(broker: Broker) -> None:
    job = client.enqueue("test_noop", {}, delay="1h")
    viewer = staff(perms=("view_job",))
    html = viewer.get(CHANGELIST).content.decode()
    assert "cancel_jobs" not in html and "delete_selected" not in html
    for action in ("cancel_jobs", "retry_jobs", "run_jobs_now", "delete_selected"):
        act(viewer, action, [job], post="yes")
        assert statuses(job) == ["scheduled"], action
    assert viewer.get(f"/admin/jobs/job/{job.pk}/change/").status_code == 200  # may look
    changer = staff(perms=("view_job", "change_job"))
    html = changer.get(CHANGELIST).content.decode()
    assert "cancel_jobs" in html and "delete_selected" not in html
    _, notes = act(changer, "cancel_jobs", [job])
    assert notes == ["Cancelled 1 job."]


# -- queues -----------------------------------------------------------------------------------------------------


def test_queue_state_saved_in_the_admin_reaches_redis(admin: Client, broker: Broker) -> None:
    response = admin.post("/admin/jobs/queuestate/add/", {"name": "mailers", "paused": "on"}, follow=True)
    assert response.status_code == 200
    assert QueueState.objects.get(name="mailers").paused and broker.depths("mailers")["paused"] == 1
    state = QueueState.objects.get(name="mailers")
    admin.post(f"/admin/jobs/queuestate/{state.pk}/change/", {"paused": ""}, follow=True)
    assert not QueueState.objects.get(name="mailers").paused and broker.depths("mailers")["paused"] == 0
    response = admin.post("/admin/jobs/queuestate/add/", {"name": "bad name!", "paused": "on"})
    assert response.status_code == 200 and "is not a queue name" in response.content.decode()
    assert not QueueState.objects.filter(name="bad name!").exists()


def test_pause_and_resume_queue_actions(admin: Client, broker: Broker) -> None:
    rows = [QueueState.objects.create(name=n) for n in ("qa", "qb")]
    data = {"action": "pause_queues", "index": "0", "_selected_action": [str(r.pk) for r in rows]}
    response = admin.post("/admin/jobs/queuestate/", data, follow=True)
    assert "Paused 2 queues: qa, qb." in [str(m) for m in response.context["messages"]]
    assert broker.depths("qa")["paused"] == 1 and broker.depths("qb")["paused"] == 1
    data["action"] = "resume_queues"
    admin.post("/admin/jobs/queuestate/", data, follow=True)
    assert broker.depths("qa")["paused"] == 0 and not QueueState.objects.get(name="qb").paused


def test_queue_states_cannot_be_deleted(admin: Client) -> None:
    state = QueueState.objects.create(name="kept", paused=True)
    assert admin.post(f"/admin/jobs/queuestate/{state.pk}/delete/", {"post": "yes"}).status_code == 403
    assert QueueState.objects.filter(name="kept").exists()


# -- tokens and schedules ---------------------------------------------------------------------------------------


def test_api_tokens_are_made_shown_once_listed_by_prefix_and_deleted(admin: Client) -> None:
    owner = User.objects.create_user("token-owner")
    response = admin.post("/admin/jobs/apitoken/add/", {"user": owner.pk, "name": "ci"})
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    key = re.search(r'data-testid="new-key">([0-9a-f]{40})<', response.content.decode()).group(1)  # type: ignore[union-attr]
    token = ApiToken.objects.get(user=owner)
    assert key not in (token.digest, token.prefix) and token.prefix == key[:8]
    assert find_token(key) == token
    listing = admin.get("/admin/jobs/apitoken/").content.decode()
    page = admin.get(f"/admin/jobs/apitoken/{token.pk}/change/").content.decode()
    for html in (listing, page):
        assert "token-owner" in html and key[:8] in html and key not in html
    response = admin.post(f"/admin/jobs/apitoken/{token.pk}/delete/", {"post": "yes"}, follow=True)
    assert response.status_code == 200 and not ApiToken.objects.filter(user=owner).exists()


def test_schedules_and_the_index_are_in_the_admin(admin: Client) -> None:
    index = admin.get("/admin/").content.decode()
    for url in (
        "/admin/jobs/job/",
        "/admin/jobs/queuestate/",
        "/admin/jobs/apitoken/",
        "/admin/scheduler/schedule/",
    ):
        assert url in index, url
        assert admin.get(url).status_code == 200, url


# -- the estimated-count paginator ----------------------------------------------------------------------------------


def test_unfiltered_count_on_postgresql_is_the_planners_estimate(broker: Broker) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("pg_class.reltuples is PostgreSQL's")
    for _ in range(30):
        client.enqueue("test_noop", {})
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_job")
    queryset = Job.objects.all()
    assert is_unfiltered(queryset) and table_estimate(queryset) == 30
    paginator = EstimatedCountPaginator(queryset, 10)
    paginator.exact_below = 10
    with CaptureQueriesContext(connection) as queries:
        assert paginator.count == 30 and paginator.num_pages == 3
    assert not [q for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    # Below the threshold the (capped) count is exact, and so is every filtered count.
    client.enqueue("test_noop", {})
    assert EstimatedCountPaginator(Job.objects.all(), 10).count == 31


def test_filtered_count_is_capped(broker: Broker) -> None:
    for _ in range(8):
        client.enqueue("test_noop", {}, queue="capped")
    client.enqueue("test_noop", {}, queue="other")
    queryset = Job.objects.filter(queue="capped")
    assert not is_unfiltered(queryset)
    assert capped_count(queryset, 5) == 5 and capped_count(queryset, 50) == 8
    paginator = EstimatedCountPaginator(queryset, 2)
    paginator.cap = 5
    with CaptureQueriesContext(connection) as queries:
        assert paginator.count == 5
    assert "LIMIT 5" in queries.captured_queries[0]["sql"].upper()
    assert EstimatedCountPaginator([1, 2, 3], 2).count == 3
