"""Where the project's templates live, and what the job page says about a job without a result."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.template.loader import get_template
from django.test import Client

from jobs import client
from jobs.broker import Broker
from jobs.models import Status
from tests.helpers import run_attempt

TEMPLATES = Path(settings.BASE_DIR) / "templates"


def test_every_template_folder_the_settings_name_exists() -> None:
    folders = [Path(folder) for engine in settings.TEMPLATES for folder in cast(list[Any], engine["DIRS"])]
    assert folders == [TEMPLATES]
    assert all(folder.is_dir() for folder in folders), folders


@pytest.mark.parametrize(
    "name", ["dashboard/base.html", "dashboard/_job.html", "api/redoc.html", "admin/base_site.html", "admin/login.html"]
)
def test_the_projects_templates_are_in_the_top_level_folder(name: str) -> None:
    origin = Path(cast(Any, get_template(name)).origin.name)
    assert origin == TEMPLATES / name


def test_no_app_keeps_project_templates_of_its_own() -> None:
    apps = [Path(settings.BASE_DIR) / app for app in ("jobs", "workers", "scheduler")]
    assert [str(p) for app in apps for p in app.rglob("templates/**/*.html")] == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        ("failed", "Failed: no result."),
        ("cancelled", "Cancelled: no result."),
        ("waiting", "No result yet."),
    ],
)
def test_job_page_says_why_there_is_no_result(broker: Broker, outcome: str, expected: str) -> None:
    job = client.enqueue("test_noop", {}, delay="1h")
    if outcome == "failed":
        job = run_attempt(client.run_now(job.pk), error="RuntimeError: nope")
        assert job.status == Status.FAILED
    elif outcome == "cancelled":
        job = client.cancel(job.pk)
    browser = Client()
    browser.force_login(User.objects.create_superuser("root-layout"))
    html = browser.get(f"/dashboard/jobs/{job.pk}/").content.decode()
    assert f'data-testid="no-result">{expected}<' in html
    assert "No result yet" not in html or outcome == "waiting"


@pytest.mark.django_db(transaction=True)
def test_admin_shows_times_to_the_second(broker: Broker) -> None:
    job = run_attempt(client.enqueue("test_noop", {}), error="RuntimeError: nope")
    browser = Client()
    browser.force_login(User.objects.create_superuser("root-times"))
    page = browser.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
    for moment in (job.created_at, job.completed_at):
        assert moment is not None
        assert moment.strftime("%Y-%m-%d %H:%M:%S") in page
    listing = browser.get("/admin/jobs/job/").content.decode()
    assert job.created_at.strftime("%Y-%m-%d %H:%M:%S") in listing
