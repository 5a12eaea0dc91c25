"""The dashboard through Django's test client: every page, fragment and action, and who may use them."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.test import Client, override_settings

from jobs import client, states
from jobs.broker import Broker, heartbeat, reset_broker
from jobs.dashboard import panels
from jobs.models import Job, JobAttempt, Outcome, QueueState, Status
from tests.helpers import run_attempt

pytestmark = pytest.mark.django_db(transaction=True)

FETCH = {"X-Requested-With": "fetch"}


# -- helpers --------------------------------------------------------------------------------------------


def user(staff: bool = True, superuser: bool = False, perms: tuple[str, ...] = ()) -> User:
    name = f"u-{uuid.uuid4().hex[:8]}"
    account = User.objects.create_user(name, password="pw-123456", is_staff=staff, is_superuser=superuser)
    for codename in perms:
        account.user_permissions.add(Permission.objects.get(codename=codename, content_type__app_label="jobs"))
    return account


def logged_in(account: User) -> Client:
    browser = Client()
    browser.force_login(account)
    return browser


@pytest.fixture
def admin_client(broker: Broker) -> Client:
    return logged_in(user(superuser=True))


run = run_attempt


def count_in_card(html: str, queue: str, status: str) -> int:
    card = html.split(f'data-testid="queue-{queue}"', 1)[1].split("</article>", 1)[0]
    match = re.search(rf'data-count="{status}">(\d+)<', card)
    assert match, f"no {status} count on the {queue} card"
    return int(match.group(1))


def text(response: Any) -> str:
    return response.content.decode()


# -- who may see it ----------------------------------------------------------------------------------------


def pages(job: Job) -> list[str]:
    return [
        "/dashboard/",
        "/dashboard/fragments/overview/",
        "/dashboard/fragments/workers/",
        "/dashboard/fragments/failures/",
        "/dashboard/jobs/",
        f"/dashboard/jobs/{job.pk}/",
        f"/dashboard/jobs/{job.pk}/fragment/",
    ]


def actions(job: Job) -> list[str]:
    return [
        f"/dashboard/jobs/{job.pk}/cancel/",
        f"/dashboard/jobs/{job.pk}/retry/",
        f"/dashboard/jobs/{job.pk}/run-now/",
        "/dashboard/queues/default/pause/",
        "/dashboard/queues/default/resume/",
    ]


@pytest.mark.parametrize("who", ["anonymous", "not staff"])
def test_pages_and_actions_send_outsiders_to_the_login(broker: Broker, who: str) -> None:
    job = client.enqueue("test_noop", {}, delay="1h")
    browser = Client() if who == "anonymous" else logged_in(user(staff=False, superuser=False))
    for url in pages(job):
        response = browser.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/admin/login/?next="), url
    for url in actions(job):
        response = browser.post(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), url
    assert Job.objects.get(pk=job.pk).status == Status.SCHEDULED
    assert not QueueState.objects.exists()


def test_staff_with_view_job_sees_but_cannot_act(broker: Broker) -> None:
    job = client.enqueue("test_noop", {}, delay="1h")
    browser = logged_in(user(staff=True, perms=("view_job",)))
    for url in pages(job):
        assert browser.get(url).status_code == 200, url
    page = text(browser.get(f"/dashboard/jobs/{job.pk}/"))
    assert 'data-testid="cancel"' not in page  # no buttons it cannot use
    for url in actions(job):
        response = browser.post(url, headers=FETCH)
        assert response.status_code == 403, url
        assert "permission" in response.json()["message"]
        assert browser.post(url).status_code == 403  # a plain form post too
    assert Job.objects.get(pk=job.pk).status == Status.SCHEDULED
    assert not QueueState.objects.exists()


def test_a_granted_permission_is_enough(broker: Broker) -> None:
    job = client.enqueue("test_noop", {}, delay="1h")
    browser = logged_in(user(staff=True, perms=("change_job", "change_queuestate")))
    assert browser.post(f"/dashboard/jobs/{job.pk}/cancel/", headers=FETCH).status_code == 200
    assert browser.post("/dashboard/queues/default/pause/", headers=FETCH).status_code == 200
    assert Job.objects.get(pk=job.pk).status == Status.CANCELLED
    assert QueueState.objects.get(name="default").paused


def test_actions_only_accept_post_and_pages_only_get(admin_client: Client) -> None:
    job = client.enqueue("test_noop", {}, delay="1h")
    for url in actions(job):
        assert admin_client.get(url).status_code == 405, url
    for url in pages(job):
        assert admin_client.post(url).status_code == 405, url
    assert Job.objects.get(pk=job.pk).status == Status.SCHEDULED


def test_actions_need_the_csrf_token(broker: Broker) -> None:
    job = client.enqueue("test_noop", {}, delay="1h")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user(superuser=True))
    assert browser.post(f"/dashboard/jobs/{job.pk}/cancel/", headers=FETCH).status_code == 403
    assert Job.objects.get(pk=job.pk).status == Status.SCHEDULED
    page = text(browser.get(f"/dashboard/jobs/{job.pk}/"))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token
    response = browser.post(f"/dashboard/jobs/{job.pk}/cancel/", {"csrfmiddlewaretoken": token.group(1)}, headers=FETCH)
    assert response.status_code == 200
    assert Job.objects.get(pk=job.pk).status == Status.CANCELLED


# -- the overview ----------------------------------------------------------------------------------------------


def test_queue_cards_show_counts_paused_state_and_buttons(admin_client: Client, broker: Broker) -> None:
    for _ in range(3):
        client.enqueue("test_noop", {}, queue="dash-a")
    client.enqueue("test_noop", {}, queue="dash-a", delay="1h")
    run(client.enqueue("test_noop", {}, queue="dash-a"), error="RuntimeError: boom")
    run(client.enqueue("test_noop", {}, queue="dash-a"), error="RuntimeError: again", permanent=False)  # retrying
    states.claim([str(client.enqueue("test_noop", {}, queue="dash-a").pk)], "test-host:1:abc")  # running
    run(client.enqueue("test_noop", {}, queue="dash-a"), Outcome.COMPLETED, result={"ok": True})
    client.enqueue("test_noop", {}, queue="dash-b")
    QueueState.objects.create(name="dash-b", paused=True)

    html = text(admin_client.get("/dashboard/"))
    expected = {"pending": 3, "scheduled": 1, "running": 1, "retrying": 1, "failed": 1}
    for status, n in expected.items():
        assert count_in_card(html, "dash-a", status) == n, status
    assert count_in_card(html, "dash-b", "pending") == 1
    card_a = html.split('data-testid="queue-dash-a"', 1)[1].split("</article>", 1)[0]
    card_b = html.split('data-testid="queue-dash-b"', 1)[1].split("</article>", 1)[0]
    assert "Active" in card_a and 'action="/dashboard/queues/dash-a/pause/"' in card_a
    assert "Paused" in card_b and 'action="/dashboard/queues/dash-b/resume/"' in card_b
    assert "1 completed" in card_a
    # The fragment the page refreshes shows the same.
    fragment = text(admin_client.get("/dashboard/fragments/overview/"))
    assert "<html" not in fragment and count_in_card(fragment, "dash-a", "pending") == 3


def test_throughput_chart_is_drawn_from_the_per_minute_counters(admin_client: Client, broker: Broker) -> None:
    client.enqueue("test_noop", {}, queue="charted")
    minute = int(time.time() // 60)
    tag = broker.keys("charted").tag
    broker.client.set(f"{tag}:completed:{minute}", 12)
    broker.client.set(f"{tag}:completed:{minute - 5}", 30)
    broker.client.set(f"{tag}:failed:{minute - 5}", 6)
    broker.client.set(f"{tag}:completed:{minute - 90}", 1000)  # older than an hour: not shown
    card = text(admin_client.get("/dashboard/")).split('data-testid="queue-charted"', 1)[1].split("</article>", 1)[0]
    svg = card.split("<svg", 1)[1].split("</svg>", 1)[0]
    assert svg.count('class="chart-slot"') == 60
    assert svg.count('class="chart-done"') == 2 and svg.count('class="chart-failed"') == 1
    heights = [
        float(h)
        for h in re.findall(
            r'class="chart-(?:done|failed)" x="[\d.]+" y="[\d.]+" width="[\d.]+" height="([\d.]+)"', svg
        )
    ]
    assert max(heights) == pytest.approx(78 * 30 / 36, abs=0.01)  # the tallest stack (36) fills the chart
    assert "42 completed" in card and "6 failed" in card and "peak 36" in card


def test_workers_panel_lists_live_workers_with_busy_slots(admin_client: Client, broker: Broker) -> None:
    now = time.time()
    heartbeat.publish(
        broker,
        "box-1:4242:aaaaaa",
        {
            "hostname": "box-1",
            "pid": 4242,
            "queues": "high,default",
            "concurrency": 8,
            "busy": 3,
            "processed": 17,
            "failed": 2,
            "started_at": now - 3600,
        },
    )
    html = text(admin_client.get("/dashboard/fragments/workers/"))
    assert "box-1:4242" in html and "high, default" in html
    assert "3 / 8" in html and 'class="meter-fill" width="38"' in html
    assert ">15<" in html and ">2<" in html and "up 1h" in html  # 17 attempts: 15 completed, 2 failed
    assert "1 live · 3 of 8 slots busy" in html
    heartbeat.remove(broker, "box-1:4242:aaaaaa")
    assert "No live workers" in text(admin_client.get("/dashboard/fragments/workers/"))


def test_recent_failures_offer_retry_or_run_now_and_cancel(admin_client: Client) -> None:
    failed = run(client.enqueue("test_noop", {}, name="nightly-report"), error="RuntimeError: disk full")
    retrying = run(client.enqueue("test_noop", {}), error="ConnectionError: smtp down", permanent=False)
    html = text(admin_client.get("/dashboard/fragments/failures/"))
    row_failed = html.split(f'data-testid="failure-{failed.pk}"', 1)[1].split("</tr>", 1)[0]
    row_retrying = html.split(f'data-testid="failure-{retrying.pk}"', 1)[1].split("</tr>", 1)[0]
    assert "RuntimeError: disk full" in row_failed and "nightly-report" in row_failed
    assert f'action="/dashboard/jobs/{failed.pk}/retry/"' in row_failed and "cancel/" not in row_failed
    assert f'action="/dashboard/jobs/{retrying.pk}/run-now/"' in row_retrying
    assert f'action="/dashboard/jobs/{retrying.pk}/cancel/"' in row_retrying
    assert "ConnectionError: smtp down" in row_retrying


def test_unknown_fragment_is_404(admin_client: Client) -> None:
    assert admin_client.get("/dashboard/fragments/secrets/").status_code == 404


def test_overview_without_redis_still_shows_the_database_counts(admin_client: Client) -> None:
    client.enqueue("test_noop", {}, queue="outage", delay="1h")
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        reset_broker()
        try:
            html = text(admin_client.get("/dashboard/"))
        finally:
            reset_broker()
    assert "Redis is not answering" in html and "Workers unknown" in html
    assert count_in_card(html, "outage", "scheduled") == 1


def test_page_assets_are_served_by_the_project(admin_client: Client) -> None:
    html = text(admin_client.get("/dashboard/"))
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert "/static/dashboard/dashboard.css" in sources and "/static/dashboard/dashboard.js" in sources
    assert not [s for s in sources if s.startswith(("http:", "https:", "//"))], sources
    assert 'name="viewport"' in html


# -- search and the job page ------------------------------------------------------------------------------------


def test_search_by_name_id_prefix_and_status(admin_client: Client) -> None:
    wanted = client.enqueue("test_noop", {}, name="welcome-email-42")
    other = client.enqueue("test_noop", {}, name="invoice-7")
    html = text(admin_client.get("/dashboard/jobs/", {"q": "welcome"}))
    assert str(wanted.pk)[:8] in html and str(other.pk)[:8] not in html
    html = text(admin_client.get("/dashboard/jobs/", {"q": str(other.pk)[:8]}))
    assert f"/dashboard/jobs/{other.pk}/" in html and f"/dashboard/jobs/{wanted.pk}/" not in html
    html = text(admin_client.get("/dashboard/jobs/", {"status": "pending"}))
    assert f"/dashboard/jobs/{other.pk}/" in html and f"/dashboard/jobs/{wanted.pk}/" in html
    html = text(admin_client.get("/dashboard/jobs/", {"status": "failed"}))
    assert "No job matches" in html
    response = admin_client.get("/dashboard/jobs/", {"q": str(wanted.pk)})
    assert response.status_code == 302 and response["Location"] == f"/dashboard/jobs/{wanted.pk}/"
    assert "No job matches" in text(admin_client.get("/dashboard/jobs/", {"q": str(uuid.uuid4())}))


@pytest.mark.parametrize("params", [{"q": "wel\x00come"}, {"queue": "de\x00fault"}])
def test_search_terms_no_database_can_store_match_nothing(admin_client: Client, params: dict[str, str]) -> None:
    """A NUL character in a search is a search that finds nothing, not a 500 (PostgreSQL refuses it)."""
    client.enqueue("test_noop", {}, name="welcome")
    assert "No job matches" in text(admin_client.get("/dashboard/jobs/", params))


@pytest.mark.parametrize("path", ["/admin/jobs/job/", "/admin/jobs/queuestate/", "/admin/jobs/apitoken/"])
def test_admin_search_with_a_nul_character_is_not_a_500(admin_client: Client, path: str) -> None:
    client.enqueue("test_noop", {}, name="welcome")
    assert admin_client.get(path, {"q": "wel\x00come"}).status_code == 200


def test_job_page_shows_payload_result_error_and_attempts(admin_client: Client) -> None:
    job = client.enqueue("test_noop", {"to": "ann@example.com", "n": 2}, retry={"max_retries": 1})
    job = run(job, error="RuntimeError: first try", permanent=False)
    Job.objects.filter(pk=job.pk).update(status=Status.PENDING)  # due now (the scheduler would do this)
    job = run(job, Outcome.COMPLETED, result={"sent": 1})
    html = text(admin_client.get(f"/dashboard/jobs/{job.pk}/"))
    assert 'data-testid="job-status">completed<' in html
    assert "&quot;to&quot;: &quot;ann@example.com&quot;" in html  # indented JSON, escaped
    assert "&quot;sent&quot;: 1" in html
    assert (
        html.count('class="pill pill-failed">failed<') == 1
        and html.count('class="pill pill-completed">completed<') == 1
    )
    assert "RuntimeError: first try" in html and "Traceback" in html
    assert 'data-testid="cancel"' not in html and 'data-testid="retry"' not in html  # completed: nothing to do
    fragment = text(admin_client.get(f"/dashboard/jobs/{job.pk}/fragment/"))
    assert "<html" not in fragment and "&quot;sent&quot;: 1" in fragment
    assert JobAttempt.objects.filter(job=job).count() == 2


def test_job_page_of_a_failed_job_offers_retry(admin_client: Client) -> None:
    job = run(client.enqueue("test_noop", {}), error="RuntimeError: nope")
    html = text(admin_client.get(f"/dashboard/jobs/{job.pk}/"))
    assert 'data-testid="job-error">RuntimeError: nope<' in html
    assert 'data-testid="retry"' in html and 'data-testid="cancel"' not in html


def test_unknown_job_is_404(admin_client: Client) -> None:
    assert admin_client.get(f"/dashboard/jobs/{uuid.uuid4()}/").status_code == 404
    assert admin_client.get("/dashboard/jobs/not-a-uuid/").status_code == 404
    assert admin_client.post(f"/dashboard/jobs/{uuid.uuid4()}/cancel/", headers=FETCH).status_code == 404


# -- actions -----------------------------------------------------------------------------------------------------


def test_retry_a_failed_job_puts_it_back_in_redis(admin_client: Client, broker: Broker) -> None:
    job = run(client.enqueue("test_noop", {}, queue="acts"), error="RuntimeError: boom")
    broker.remove("acts", [str(job.pk)])
    response = admin_client.post(f"/dashboard/jobs/{job.pk}/retry/", headers=FETCH)
    assert response.status_code == 200
    assert response.json() == {"ok": True, "message": f"Job {str(job.pk)[:8]} is queued to run again."}
    row = Job.objects.get(pk=job.pk)
    assert row.status == Status.PENDING and row.attempts == 0 and row.error == ""
    assert str(job.pk) in broker.ids("acts")["ready"]
    [entry] = LogEntry.objects.filter(object_id=str(job.pk))
    assert entry.change_message == f"Job {str(job.pk)[:8]} is queued to run again. (dashboard)"
    assert User.objects.get(pk=entry.user_id).is_superuser


def test_cancel_a_scheduled_job_removes_it_from_redis(admin_client: Client, broker: Broker) -> None:
    job = client.enqueue("test_noop", {}, queue="acts", delay="1h")
    assert str(job.pk) in broker.ids("acts")["delayed"]
    response = admin_client.post(f"/dashboard/jobs/{job.pk}/cancel/", headers=FETCH)
    assert response.status_code == 200 and response.json()["message"] == f"Cancelled job {str(job.pk)[:8]}."
    assert Job.objects.get(pk=job.pk).status == Status.CANCELLED
    assert str(job.pk) not in broker.ids("acts")["delayed"]


def test_cancel_a_running_job_asks_it_to_stop(admin_client: Client) -> None:
    job = client.enqueue("test_noop", {})
    states.claim([str(job.pk)], "test-host:1:abc")
    response = admin_client.post(f"/dashboard/jobs/{job.pk}/cancel/", headers=FETCH)
    assert response.status_code == 200 and "Asked job" in response.json()["message"]
    row = Job.objects.get(pk=job.pk)
    assert row.status == Status.RUNNING and row.cancel_requested


def test_run_now_makes_a_scheduled_job_ready(admin_client: Client, broker: Broker) -> None:
    job = client.enqueue("test_noop", {}, queue="acts", delay="1h")
    response = admin_client.post(f"/dashboard/jobs/{job.pk}/run-now/", headers=FETCH)
    assert response.status_code == 200 and response.json()["message"].endswith("is due now.")
    assert Job.objects.get(pk=job.pk).status == Status.PENDING
    ids = broker.ids("acts")
    assert str(job.pk) in ids["ready"] and str(job.pk) not in ids["delayed"]


@pytest.mark.parametrize(
    ("action", "wanted"),
    [
        ("cancel", "only a waiting or running job can be cancelled"),
        ("retry", "only a failed or cancelled job"),
        ("run-now", "only a scheduled or retrying job"),
    ],
)
def test_refusals_of_the_state_machine_are_409(admin_client: Client, action: str, wanted: str) -> None:
    job = run(client.enqueue("test_noop", {}), Outcome.COMPLETED, result=1)
    response = admin_client.post(f"/dashboard/jobs/{job.pk}/{action}/", headers=FETCH)
    assert response.status_code == 409
    assert response.json()["ok"] is False and wanted in response.json()["message"]
    assert Job.objects.get(pk=job.pk).status == Status.COMPLETED


def test_plain_form_posts_redirect_back_with_a_message(admin_client: Client) -> None:
    job = client.enqueue("test_noop", {}, delay="1h")
    response = admin_client.post(f"/dashboard/jobs/{job.pk}/cancel/", {"next": "/dashboard/"}, follow=True)
    assert response.redirect_chain == [("/dashboard/", 302)]
    assert f"Cancelled job {str(job.pk)[:8]}." in text(response)
    response = admin_client.post(f"/dashboard/jobs/{job.pk}/cancel/", follow=True)  # again: refused
    assert response.redirect_chain == [(f"/dashboard/jobs/{job.pk}/", 302)]
    assert "only a waiting or running job can be cancelled" in text(response)
    # Never redirected off the site.
    response = admin_client.post(f"/dashboard/jobs/{job.pk}/retry/", {"next": "https://evil.example/"})
    assert response["Location"] == f"/dashboard/jobs/{job.pk}/"


def test_pause_and_resume_a_queue(admin_client: Client, broker: Broker) -> None:
    client.enqueue("test_noop", {}, queue="mail")
    response = admin_client.post("/dashboard/queues/mail/pause/", headers=FETCH)
    assert response.status_code == 200 and response.json()["message"] == "Queue mail paused."
    assert QueueState.objects.get(name="mail").paused and broker.depths("mail")["paused"] == 1
    html = text(admin_client.get("/dashboard/"))
    assert 'action="/dashboard/queues/mail/resume/"' in html
    response = admin_client.post("/dashboard/queues/mail/resume/", headers=FETCH)
    assert response.json()["message"] == "Queue mail resumed."
    assert not QueueState.objects.get(name="mail").paused and broker.depths("mail")["paused"] == 0


def test_pausing_a_queue_with_an_impossible_name_is_404(admin_client: Client) -> None:
    assert admin_client.post("/dashboard/queues/" + "x" * 65 + "/pause/", headers=FETCH).status_code == 404
    assert admin_client.post("/dashboard/queues/a%20b/pause/", headers=FETCH).status_code == 404
    assert not QueueState.objects.exists()


def test_search_for_a_lone_surrogate_finds_nothing() -> None:
    """A URL cannot carry one (it decodes to U+FFFD), but Python code calling the search can."""
    client.enqueue("test_noop", {}, name="welcome")
    assert list(panels.find("\ud800")) == [] and list(panels.find("", queue="\udfff")) == []
