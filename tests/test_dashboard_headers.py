"""Security headers (issue 19 item 11): a Content-Security-Policy on the dashboard, the admin, the API
docs and the API, ``Cache-Control: no-store`` on every dashboard answer, and pages that keep to their
policy (no inline script or style for it to block). The real browser checks them in
``test_dashboard_browser.py``."""

from __future__ import annotations

import re
import uuid

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from jobs import client
from jobs.api import docs_assets
from jobs.broker import Broker
from jobs.dashboard import job_sets
from tests.helpers import run_attempt, token_client
from tests.test_dashboard import pages
from zipline_site import csp

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def operator(broker: Broker) -> Client:
    browser = Client()
    browser.force_login(User.objects.create_superuser(f"root-{uuid.uuid4().hex[:6]}"))
    return browser


def dashboard_pages() -> list[str]:
    job = run_attempt(client.enqueue("test_noop", {}), error="RuntimeError: nope")
    return [*pages(job), *(reverse(f"dashboard:{slug}") for slug in job_sets.SETS)]


def test_dashboard_answers_are_not_stored_and_load_only_their_own_files(operator: Client) -> None:
    for url in dashboard_pages():
        response = operator.get(url)
        assert response.status_code == 200, url
        assert "no-store" in response["Cache-Control"], url
        assert response["Content-Security-Policy"] == csp.PAGES, url
        assert "default-src 'self'" in response["Content-Security-Policy"]
    response = operator.post(f"{reverse('dashboard:dead-bulk')}", {"action": "retry", "scope": "all"})
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]  # the confirmation


def test_dashboard_pages_have_no_inline_script_or_style_for_the_policy_to_block(operator: Client) -> None:
    for url in dashboard_pages():
        page = operator.get(url).content.decode()
        assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", page), f"inline script in {url}"
        assert not re.search(r"\sstyle=", page), f"inline style attribute in {url}"
        assert not re.search(r"\son[a-z]+=", page), f"inline event handler in {url}"


@pytest.mark.parametrize("url", ["/admin/", "/admin/jobs/job/", "/admin/login/"])
def test_admin_pages_have_the_same_policy(operator: Client, url: str) -> None:
    response = operator.get(url)
    assert response.status_code in (200, 302)
    assert response["Content-Security-Policy"] == csp.PAGES


def test_admin_job_pages_keep_to_the_policy(operator: Client) -> None:
    job = run_attempt(client.enqueue("test_noop", {"n": 1}), error="RuntimeError: nope")
    for url in ("/admin/jobs/job/", f"/admin/jobs/job/{job.pk}/change/"):
        page = operator.get(url).content.decode()
        assert not re.search(r"\sstyle=", page), f"inline style attribute in {url}"
        assert "zl-status-failed" in page


def test_api_answers_load_nothing(broker: Broker) -> None:
    api = token_client(User.objects.create_superuser(f"api-{uuid.uuid4().hex[:6]}"))
    for url in ("/api/v1/jobs", "/api/v1/stats", "/health", "/api/schema/"):
        response = api.get(url)
        assert response.status_code == 200, url
        assert response["Content-Security-Policy"] == csp.DATA, url
        assert "default-src 'none'" in response["Content-Security-Policy"]


def test_api_docs_allow_their_bundles_styles_but_nothing_from_elsewhere(operator: Client) -> None:
    for url in ("/api/docs/", "/api/redoc/"):
        response = operator.get(url)
        assert response.status_code == 200, url
        policy = response["Content-Security-Policy"]
        assert policy == csp.DOCS
        assert "http" not in policy and "'unsafe-eval'" not in policy
        assert "script-src" not in policy  # scripts fall back to default-src 'self': no inline script
        page = response.content.decode()
        assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", page), f"inline script in {url}"
        assert not re.search(r"""(src|href)=["']https?://""", page), f"an outside asset in {url}"


def test_swagger_ui_starts_from_a_file_and_shows_no_outside_validator_badge(operator: Client) -> None:
    script = operator.get("/api/docs/?script=")
    assert script.status_code == 200 and "javascript" in script["Content-Type"]
    assert '"validatorUrl": null' in script.content.decode()


def test_redoc_bundle_is_served_without_its_cdn_logo(operator: Client) -> None:
    response = Client().get(reverse("api-redoc-js"))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/javascript")
    bundle = response.content.decode()
    assert "Redoc" in bundle and len(bundle) > 100_000
    assert docs_assets.REMOTE_LOGO not in bundle and "cdn.redoc.ly" not in bundle
    assert docs_assets.LOCAL_LOGO in bundle
    assert reverse("api-redoc-js") in operator.get("/api/redoc/").content.decode()
