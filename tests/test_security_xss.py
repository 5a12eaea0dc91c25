"""Issue 19's stored-XSS probes, kept: markup in every field a submitter or a worker controls, shown
on every dashboard page and fragment and on the admin's job pages, must arrive escaped (the Django
test client) and must never run (a real Chromium against a real ``runserver``).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from jobs import client, states
from jobs.broker import heartbeat
from jobs.models import Job, Outcome
from tests.test_dashboard_browser import CHROMIUM, chromium, server  # noqa: F401 - the browser test's fixtures

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a-long-operator-password-9"
#: Each piece sets ``window.__xss`` if a page ever lets it run.
MARKUP = (
    "<script>window.__xss=1</script><img src=x onerror=window.__xss=2>"
    '"><svg onload=window.__xss=3>\'><iframe srcdoc="<script>parent.__xss=4</script>">'
)
RAW = ("<script>", "<img src=x", "<svg onload", "<iframe srcdoc")


def poison(broker: Any) -> tuple[Job, Job]:
    """A failed and a completed job, and a live worker, with MARKUP in every text they carry."""
    payload = {MARKUP: MARKUP, "nested": {"list": [MARKUP, {"k": MARKUP}]}}
    failed = client.enqueue("test_noop", payload, name=MARKUP[:200], idempotency_key=MARKUP[:200])
    done = client.enqueue("test_noop", payload, name=f"done {MARKUP}"[:200])
    now = timezone.now()
    for job, outcome in ((failed, Outcome.FAILED), (done, Outcome.COMPLETED)):
        [claimed] = states.claim([str(job.pk)], f"host{MARKUP}"[:200])
        result = {MARKUP: [MARKUP]} if outcome == Outcome.COMPLETED else None
        error = MARKUP if outcome == Outcome.FAILED else ""
        states.record(
            [
                states.AttemptResult(
                    claimed, outcome, now, now, 0.1, result=result, error=error, traceback=error, permanent=True
                )
            ]
        )
    facts = {"hostname": MARKUP, "pid": 1, "concurrency": 2, "started_at": now.timestamp(), "queues": MARKUP}
    heartbeat.publish(broker, f"w{MARKUP}"[:120], facts)
    return Job.objects.get(pk=failed.pk), Job.objects.get(pk=done.pk)


def pages(failed: Job, done: Job) -> list[str]:
    search = "/dashboard/jobs/?q=%3Cscript%3Ewindow.__xss%3D1%3C%2Fscript%3E"
    return [
        "/dashboard/",
        *(f"/dashboard/fragments/{section}/" for section in ("overview", "workers", "failures")),
        "/dashboard/jobs/",
        search,
        *(f"/dashboard/jobs/{job.pk}/" for job in (failed, done)),
        *(f"/dashboard/jobs/{job.pk}/fragment/" for job in (failed, done)),
        "/admin/jobs/job/",
        *(f"/admin/jobs/job/{job.pk}/change/" for job in (failed, done)),
    ]


@pytest.fixture
def operator() -> User:
    return User.objects.create_superuser("operator", password=PASSWORD)


def test_markup_arrives_escaped_on_every_page(broker: Any, operator: User) -> None:
    failed, done = poison(broker)
    browser = Client()
    browser.force_login(operator)
    for path in pages(failed, done):
        response = browser.get(path)
        assert response.status_code == 200, path
        html = response.content.decode()
        for raw in RAW:
            assert raw not in html, f"{path} carries {raw!r} unescaped"
        if not path.endswith("/overview/"):  # counts only
            assert "&lt;script&gt;window.__xss=1" in html, f"{path} does not show the markup: it proves nothing"


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}")
def test_markup_never_runs_in_a_real_browser(
    broker: Any,
    operator: User,
    server: str,  # noqa: F811 - the fixture imported above
    chromium: Any,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    failed, done = poison(broker)
    page = chromium.new_page()
    dialogs: list[str] = []

    def dismiss(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    page.goto(f"{server}/admin/login/?next=/dashboard/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page).to_have_url(f"{server}/dashboard/")
    for path in pages(failed, done):
        page.goto(f"{server}{path}")
        page.wait_for_load_state("networkidle")
        assert page.evaluate("window.__xss") is None, f"markup ran on {path}"
    assert not dialogs
    content = page.content()
    assert re.search(r"window\.__xss=1", content), "the last page did not show the markup"
