"""Retries, Scheduled and Dead (Sidekiq's sets) through Django's test client: the pages, their cursor
pagination, and bulk retry, run now, cancel and delete with a confirmation that states the count."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs import client
from jobs.broker import Broker
from jobs.dashboard import job_sets
from jobs.models import Job, Status
from tests.helpers import run_attempt

pytestmark = pytest.mark.django_db(transaction=True)


def account(*perms: str, superuser: bool = False) -> Client:
    person = User.objects.create_user(f"u-{uuid.uuid4().hex[:8]}", is_staff=True, is_superuser=superuser)
    for codename in perms:
        person.user_permissions.add(Permission.objects.get(codename=codename, content_type__app_label="jobs"))
    browser = Client()
    browser.force_login(person)
    return browser


@pytest.fixture
def operator(broker: Broker) -> Client:
    return account(superuser=True)


def dead(queue: str = "default", error: str = "RuntimeError: storage down", name: str = "") -> Job:
    job = client.enqueue("test_noop", {}, queue=queue, name=name)
    return run_attempt(job, error=error)


def retrying(queue: str = "default", error: str = "TimeoutError: slow peer") -> Job:
    job = client.enqueue("test_noop", {}, queue=queue, retry={"max_retries": 3, "initial_delay": "1h"})
    return run_attempt(job, error=error, permanent=False)


def html(response: Any) -> str:
    assert response.status_code == 200, response.content[:500]
    return str(response.content.decode())


def row_ids(page: str) -> list[str]:
    return re.findall(r'name="id" value="([0-9a-f-]{36})"', page)


def test_each_set_lists_its_jobs_with_their_error(operator: Client) -> None:
    gone = dead(error="RuntimeError: storage down\nmore detail")
    again = retrying()
    later = client.enqueue("test_noop", {}, delay="2h", name="weekly-digest")
    client.enqueue("test_noop", {})  # pending: in none of them
    for url, job, shown in [
        ("/dashboard/dead/", gone, "RuntimeError: storage down"),
        ("/dashboard/retries/", again, "TimeoutError: slow peer"),
        ("/dashboard/scheduled/", later, "weekly-digest"),
    ]:
        page = html(operator.get(url))
        assert row_ids(page) == [str(job.pk)], url
        assert shown in page
        assert "<h1>" in page
    assert "more detail" not in html(operator.get("/dashboard/dead/"))  # the first line only
    assert re.search(r'data-testid="set-error">TimeoutError: slow peer<', html(operator.get("/dashboard/retries/")))


def test_pages_follow_a_cursor_past_fifty_rows_without_repeating_or_skipping(operator: Client) -> None:
    # 120 due at only three distinct times: the cursor must order ties by id.
    due = timezone.now() + timedelta(hours=1)
    jobs = [client.enqueue("test_noop", {}, schedule_at=due + timedelta(minutes=n % 3)) for n in range(120)]
    client.enqueue("test_noop", {}, delay="1h", queue="other")
    seen: list[str] = []
    url: str | None = "/dashboard/scheduled/?queue=default"
    pages = 0
    while url:
        page = html(operator.get(url))
        ids = row_ids(page)
        assert len(ids) <= job_sets.PAGE_SIZE
        seen += ids
        pages += 1
        match = re.search(r'href="([^"]+)" rel="next"', page)
        url = match.group(1).replace("&amp;", "&") if match else None
    assert pages == 3
    assert len(seen) == len(set(seen)) == 120
    assert set(seen) == {str(job.pk) for job in jobs}
    due_order = list(Job.objects.filter(pk__in=seen).order_by("schedule_at", "id").values_list("id", flat=True))
    assert seen == [str(pk) for pk in due_order]


def test_the_cursor_is_a_keyset_not_an_offset(broker: Broker) -> None:
    first = job_sets.page(job_sets.SETS["scheduled"], size=2)
    assert first.next_cursor is None
    for _ in range(3):
        client.enqueue("test_noop", {}, delay="1h")
    first = job_sets.page(job_sets.SETS["scheduled"], size=2)
    assert first.next_cursor
    # A job due before the cursor's row, added after the first page was read, does not shift the second.
    client.enqueue("test_noop", {}, delay="1m")
    with CaptureQueriesContext(connection) as queries:
        second = job_sets.page(job_sets.SETS["scheduled"], cursor=first.next_cursor, size=2)
    assert [q["sql"] for q in queries if "OFFSET" in q["sql"].upper()] == []
    assert [job.pk for job in second.rows] == [
        job.pk for job in Job.objects.filter(status=Status.SCHEDULED).order_by("schedule_at", "id")[3:4]
    ]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"cursor": "not-a-cursor"}, "cursor"), ({"queue": "bad queue!"}, "queue"), ({"cursor": "MjAyNHx4"}, "cursor")],
)
def test_bad_parameters_are_a_400_naming_the_field_and_value(
    operator: Client, params: dict[str, str], field: str
) -> None:
    response = operator.get("/dashboard/dead/", params)
    assert response.status_code == 400
    body = response.content.decode()
    assert body.startswith(f"{field}: ") and repr(params[field]) in body


def test_retry_every_failed_job_of_a_queue_after_a_confirmation(operator: Client, broker: Broker) -> None:
    mine = [dead("emails") for _ in range(3)]
    other = dead("images")
    form = {"action": "retry", "scope": "all", "queue": "emails"}
    confirm = html(operator.post("/dashboard/dead/bulk/", form))
    assert "Retry 3 dead jobs of queue emails." in confirm
    assert all(job.status == Status.FAILED for job in Job.objects.all())  # nothing changed yet
    as_of = re.search(r'name="as_of" value="([^"]+)"', confirm)
    assert as_of
    late = dead("emails")  # failed after the operator confirmed: not part of what was confirmed
    response = operator.post("/dashboard/dead/bulk/", {**form, "as_of": as_of.group(1), "confirm": "yes"})
    assert response.status_code == 302 and response["Location"] == "/dashboard/dead/?queue=emails"
    assert {j.status for j in Job.objects.filter(pk__in=[j.pk for j in mine])} == {Status.PENDING}
    assert Job.objects.get(pk=other.pk).status == Status.FAILED
    assert Job.objects.get(pk=late.pk).status == Status.FAILED
    assert {str(j.pk) for j in mine} <= set(broker.ids("emails")["ready"])
    page = html(operator.get(response["Location"]))
    assert "Retried 3 jobs." in page
    assert LogEntry.objects.filter(change_message__contains="Retried 3 jobs").count() == 3


def test_selected_retries_run_now_and_one_that_left_the_set_is_skipped(operator: Client, broker: Broker) -> None:
    a, b, c = retrying(), retrying(), retrying()
    client.cancel(c.pk)  # leaves Retries between the page and the click
    form = {"action": "run-now", "scope": "selected", "id": [str(a.pk), str(b.pk), str(c.pk)]}
    assert "Retry now 2 selected retrying jobs." in html(operator.post("/dashboard/retries/bulk/", form))
    response = operator.post("/dashboard/retries/bulk/", {**form, "confirm": "yes"}, follow=True)
    assert "Made due now: 2 jobs. 1 job had left Retries and was left alone." in html(response)
    assert {Job.objects.get(pk=j.pk).status for j in (a, b)} == {Status.PENDING}
    assert Job.objects.get(pk=c.pk).status == Status.CANCELLED


def test_cancel_and_delete_scheduled_jobs(operator: Client, broker: Broker) -> None:
    keep, drop = client.enqueue("test_noop", {}, delay="1h"), client.enqueue("test_noop", {}, delay="1h")
    stop = client.enqueue("test_noop", {}, delay="1h")
    operator.post(
        "/dashboard/scheduled/bulk/", {"action": "cancel", "scope": "selected", "id": [stop.pk], "confirm": "yes"}
    )
    assert Job.objects.get(pk=stop.pk).status == Status.CANCELLED
    form = {"action": "delete", "scope": "selected", "id": [str(drop.pk)]}
    assert "Delete 1 selected scheduled jobs: they are deleted" in html(
        operator.post("/dashboard/scheduled/bulk/", form)
    )
    operator.post("/dashboard/scheduled/bulk/", {**form, "confirm": "yes"})
    assert not Job.objects.filter(pk=drop.pk).exists()
    assert Job.objects.get(pk=keep.pk).status == Status.SCHEDULED
    assert str(drop.pk) not in broker.ids("default")["delayed"]
    assert str(keep.pk) in broker.ids("default")["delayed"]


def test_the_dead_set_offers_no_cancel(operator: Client) -> None:
    job = dead()
    page = html(operator.get("/dashboard/dead/"))
    assert 'value="retry"' in page and 'value="delete"' in page and 'value="cancel"' not in page
    response = operator.post("/dashboard/dead/bulk/", {"action": "cancel", "scope": "selected", "id": [job.pk]})
    assert response.status_code == 400
    assert "action: 'cancel' is not an action of Dead" in response.content.decode()


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"action": "retry", "scope": "selected", "id": ["nope"]}, "id"),
        ({"action": "retry", "scope": "some"}, "scope"),
        ({"action": "retry", "scope": "all", "as_of": "yesterday"}, "as_of"),
        ({"action": "retry", "scope": "all", "queue": "a b"}, "queue"),
    ],
)
def test_bad_bulk_forms_are_a_400_naming_the_field(operator: Client, form: dict[str, Any], field: str) -> None:
    job = dead()
    response = operator.post("/dashboard/dead/bulk/", {**form, "confirm": "yes"})
    assert response.status_code == 400 and response.content.decode().startswith(f"{field}: ")
    assert Job.objects.get(pk=job.pk).status == Status.FAILED


def test_nothing_selected_says_so(operator: Client) -> None:
    dead()
    response = operator.post("/dashboard/dead/bulk/", {"action": "retry", "scope": "selected"}, follow=True)
    assert "Select the jobs to retry first." in html(response)


def test_a_viewer_sees_the_sets_but_cannot_act(broker: Broker) -> None:
    job = dead()
    viewer = account("view_job")
    page = html(viewer.get("/dashboard/dead/"))
    assert row_ids(page) == [] and str(job.pk)[:8] in page  # no checkboxes, no buttons
    response = viewer.post("/dashboard/dead/bulk/", {"action": "retry", "scope": "all", "confirm": "yes"})
    assert response.status_code == 403 and "jobs.change_job" in response.content.decode()
    changer = account("view_job", "change_job")
    response = changer.post("/dashboard/dead/bulk/", {"action": "delete", "scope": "all", "confirm": "yes"})
    assert response.status_code == 403 and "jobs.delete_job" in response.content.decode()
    assert Job.objects.get(pk=job.pk).status == Status.FAILED


def test_bulk_actions_need_post_and_the_csrf_token(broker: Broker) -> None:
    job = dead()
    person = User.objects.create_superuser(f"s-{uuid.uuid4().hex[:6]}")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(person)
    form = {"action": "retry", "scope": "all", "confirm": "yes"}
    assert strict.post("/dashboard/dead/bulk/", form).status_code == 403
    assert strict.get("/dashboard/dead/bulk/", form).status_code == 405
    assert Job.objects.get(pk=job.pk).status == Status.FAILED


def test_a_large_set_is_changed_a_bounded_number_at_a_time(
    operator: Client, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(job_sets, "BULK_LIMIT", 2)  # 1,000 in production: each request stays short
    jobs = [dead() for _ in range(5)]
    form = {"action": "delete", "scope": "all"}
    confirm = html(operator.post("/dashboard/dead/bulk/", form))
    assert "Delete 5 dead jobs of every queue" in confirm and "This does 2 of them now" in confirm
    assert "Yes, delete 2 jobs" in confirm
    response = operator.post("/dashboard/dead/bulk/", {**form, "confirm": "yes"}, follow=True)
    assert "Deleted 2 jobs. 3 jobs more to delete: confirm again to go on." in html(response)
    assert Job.objects.filter(pk__in=[j.pk for j in jobs]).count() == 3
    retried = job_sets.apply(job_sets.RETRY, job_sets.Selection(job_sets.SETS["dead"], every=True))
    assert (len(retried.changed), retried.remaining) == (2, 1)


def test_queue_cards_lead_to_the_sets_of_their_queue(operator: Client) -> None:
    dead("emails")
    retrying("emails")
    client.enqueue("test_noop", {}, queue="emails", delay="1h")
    card = html(operator.get("/dashboard/")).split('data-testid="queue-emails"', 1)[1].split("</article>", 1)[0]
    assert 'href="/dashboard/dead/?queue=emails" data-count="failed"' in card
    assert 'href="/dashboard/retries/?queue=emails" data-count="retrying"' in card
    assert 'href="/dashboard/scheduled/?queue=emails" data-count="scheduled"' in card
    assert 'href="/dashboard/jobs/?queue=emails&amp;status=pending" data-count="pending"' in card


def test_outsiders_are_sent_to_the_login(broker: Broker) -> None:
    job = dead()
    outsider = Client()
    outsider.force_login(User.objects.create_user(f"n-{uuid.uuid4().hex[:6]}", is_staff=False))
    for browser in (Client(), outsider):
        for slug in job_sets.SETS:
            response = browser.get(f"/dashboard/{slug}/")
            assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), slug
            response = browser.post(f"/dashboard/{slug}/bulk/", {"action": "delete", "scope": "all", "confirm": "yes"})
            assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), slug
    assert Job.objects.get(pk=job.pk).status == Status.FAILED
