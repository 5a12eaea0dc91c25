"""Issue 19's read attacks, kept as regression tests.

- A staff user without any permission opened the dashboard's job page and read the payload (the admin
  answered 403): every dashboard view needs ``jobs.view_job``.
- A token without permissions read another user's webhook job with its ``Authorization`` header: reads
  need ``jobs.view_job``, and secret-looking payload values are masked for everyone but the job's
  submitter and superusers, in the API, the admin and the dashboard; the worker still gets them.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from rest_framework.test import APIClient

from jobs import client
from jobs.masking import MASK, masked
from jobs.models import Job, Status
from jobs.roles import OPERATOR, VIEWER, grant_role
from tests.helpers import token_client, wait_for
from tests.procs import running

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "Bearer sk-live-8f1c2d3e4b5a"
WEBHOOK = {
    "type": "webhook",
    "queue": "hooks",
    "schedule_at": "2099-01-01T00:00:00Z",  # never runs here: only read
    "payload": {
        "url": "https://hooks.example.com/deploy",
        "method": "POST",
        "headers": {"Authorization": SECRET, "X-Request-Source": "ci"},
        "data": {"build": 7, "nested": [{"Api-Key": SECRET}], "db_password": SECRET},
    },
}


def account(name: str, *, staff: bool = False, role: str | None = None, superuser: bool = False) -> User:
    if superuser:
        return User.objects.create_superuser(name, password="pw-123456")
    user = User.objects.create_user(name, password="pw-123456", is_staff=staff)
    if role:
        grant_role(user, role)
    return user


def logged_in(user: User) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


@pytest.fixture
def alices_job(broker: Any) -> Job:
    """A webhook job alice (a viewer) submitted over the API, with secrets in its payload."""
    alice = account("alice", role=VIEWER)
    response = token_client(alice).post("/api/v1/jobs", WEBHOOK, format="json")
    assert response.status_code == 201, response.content
    assert SECRET in response.content.decode()  # the submitter's own answer is not masked
    return Job.objects.get(pk=response.json()["id"])


# -- masking rules ------------------------------------------------------------------------------------------


def test_values_under_secret_looking_keys_are_masked_at_any_depth() -> None:
    payload: dict[str, Any] = {
        "Authorization": "a",
        "headers": {"COOKIE": "b", "Set-Cookie": "c", "x-api-key": "d", "X_Auth_Token": "e"},
        "users": [{"name": "n", "Password": "f"}, ["plain", {"client_secret": {"deep": "g"}}]],
        "api_key": ["h"],
        "count": 3,
    }
    assert masked(payload) == {
        "Authorization": MASK,
        "headers": {"COOKIE": MASK, "Set-Cookie": MASK, "x-api-key": MASK, "X_Auth_Token": MASK},
        "users": [{"name": "n", "Password": MASK}, ["plain", {"client_secret": MASK}]],
        "api_key": MASK,
        "count": 3,
    }
    assert payload["headers"]["COOKIE"] == "b"  # a copy: the job keeps its payload


def test_a_url_s_password_is_masked_whatever_its_key() -> None:
    payload = {"url": "https://bot:s3cret@hooks.example.com/x", "note": "see http://example.com/a:b@c", "n": 1}
    assert masked(payload) == {
        "url": "https://bot:***@hooks.example.com/x",
        "note": "see http://example.com/a:b@c",  # a colon and an at sign in a path are no password
        "n": 1,
    }


# -- the API ----------------------------------------------------------------------------------------------------


def test_a_token_without_permissions_reads_no_job(alices_job: Job) -> None:
    mallory = token_client(account("mallory"))
    for path in (f"/api/v1/jobs/{alices_job.pk}", "/api/v1/jobs"):
        response = mallory.get(path)
        assert response.status_code == 403, (path, response.content)
        assert "jobs.view_job" in response.json()["error"]["message"]
        assert SECRET not in response.content.decode()


def test_another_reader_sees_the_secrets_masked_and_the_rest_as_it_is(alices_job: Job) -> None:
    bob = token_client(account("bob", role=VIEWER))
    payload = bob.get(f"/api/v1/jobs/{alices_job.pk}").json()["payload"]
    assert SECRET not in str(payload)
    assert payload["headers"] == {"Authorization": MASK, "X-Request-Source": "ci"}
    assert payload["data"] == {"build": 7, "nested": [{"Api-Key": MASK}], "db_password": MASK}
    assert payload["url"] == WEBHOOK["payload"]["url"]  # type: ignore[index]


def test_an_operators_cancel_answer_is_masked_too(alices_job: Job) -> None:
    operator = User.objects.create_user("olivia")
    operator.user_permissions.add(Permission.objects.get(codename="change_job", content_type__app_label="jobs"))
    response = token_client(operator).post(f"/api/v1/jobs/{alices_job.pk}/cancel")
    assert response.status_code == 200 and SECRET not in response.content.decode()


def test_the_submitter_and_superusers_see_the_real_values(alices_job: Job) -> None:
    alice = User.objects.get(username="alice")
    for reader in (alice, account("root", superuser=True)):
        payload = token_client(reader).get(f"/api/v1/jobs/{alices_job.pk}").json()["payload"]
        assert payload == WEBHOOK["payload"], reader.username


# -- the dashboard and the admin ----------------------------------------------------------------------------


def test_staff_without_view_job_gets_403_on_the_dashboard_as_on_the_admin(alices_job: Job) -> None:
    browser = logged_in(account("intern", staff=True))
    for path in (
        f"/dashboard/jobs/{alices_job.pk}/",
        f"/dashboard/jobs/{alices_job.pk}/fragment/",
        "/dashboard/",
        "/dashboard/jobs/",
        "/dashboard/fragments/failures/",
        f"/admin/jobs/job/{alices_job.pk}/change/",
    ):
        response = browser.get(path)
        assert response.status_code == 403, path
        assert SECRET not in response.content.decode(), path
    fetched = browser.get(f"/dashboard/jobs/{alices_job.pk}/fragment/", headers={"X-Requested-With": "fetch"})
    assert fetched.status_code == 403 and "jobs.view_job" in fetched.json()["message"]


@pytest.mark.parametrize(
    "path",
    ["/dashboard/jobs/{pk}/", "/dashboard/jobs/{pk}/fragment/", "/admin/jobs/job/{pk}/change/"],
    ids=["dashboard-page", "dashboard-fragment", "admin-page"],
)
def test_pages_mask_secrets_for_other_staff_but_not_for_superusers(alices_job: Job, path: str) -> None:
    url = path.format(pk=alices_job.pk)
    viewer = logged_in(account("carol", staff=True, role=VIEWER)).get(url)
    assert viewer.status_code == 200
    page = viewer.content.decode()
    assert SECRET not in page and MASK in page and "hooks.example.com" in page
    root = logged_in(account("root", superuser=True)).get(url).content.decode()
    assert SECRET in root


# -- the worker -------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_worker_runs_with_the_real_values(broker: Any, tmp_path: Path) -> None:
    dave = account("dave", role=VIEWER)
    payload = {"headers": {"Authorization": SECRET}, "token": SECRET}
    response = token_client(dave).post("/api/v1/jobs", {"type": "test_noop", "payload": payload}, format="json")
    job_id = response.json()["id"]
    with running(["runworkers", "--processes", "1", "--concurrency", "1"], tmp_path) as pool:
        wait_for(
            lambda: Job.objects.filter(pk=job_id, status=Status.COMPLETED).exists(), 20, message="the job completed"
        )
        pool.signal(signal.SIGTERM)
        assert pool.wait(20) == 0
    assert Job.objects.get(pk=job_id).result == {"echo": payload}  # test_noop returns what it was given
    assert client.get(job_id).payload == payload  # type: ignore[union-attr]
    masked_view = APIClient()
    masked_view.force_authenticate(account("erin", role=VIEWER))
    shown = masked_view.get(f"/api/v1/jobs/{job_id}").json()
    hidden = {"headers": {"Authorization": MASK}, "token": MASK}
    assert shown["payload"] == hidden and shown["result"] == {"echo": hidden}


# -- schedules: a job template has no submitter ------------------------------------------------------------------

SCHEDULE = {
    "name": "nightly-deploy-hook",
    "cron": "0 3 * * *",
    "job": {"type": "webhook", "queue": "hooks", "payload": WEBHOOK["payload"]},
}


@pytest.fixture
def schedule_with_secrets(broker: Any) -> int:
    """A schedule an operator made over the API, whose job template carries secrets."""
    response = token_client(account("oscar", role=OPERATOR)).post("/api/v1/schedules", SCHEDULE, format="json")
    assert response.status_code == 201, response.content
    return int(response.json()["id"])


def test_a_viewer_reads_a_schedule_s_template_with_its_secrets_masked(schedule_with_secrets: int) -> None:
    viewer = token_client(account("vera", role=VIEWER))
    for path in ("/api/v1/schedules", f"/api/v1/schedules/{schedule_with_secrets}"):
        response = viewer.get(path)
        assert response.status_code == 200, path
        assert SECRET not in response.content.decode() and MASK in response.content.decode(), path
    shown = viewer.get(f"/api/v1/schedules/{schedule_with_secrets}").json()["job"]["payload"]
    assert shown == masked(WEBHOOK["payload"])


def test_who_may_edit_a_schedule_reads_it_as_it_is_so_what_they_send_back_keeps_the_secrets(
    schedule_with_secrets: int,
) -> None:
    # An editor could point the template anywhere and collect its secrets; masking them would only make a
    # PATCH of what was read overwrite them with asterisks.
    for user in (account("otto", role=OPERATOR), account("root", superuser=True)):
        editor = token_client(user)
        read = editor.get(f"/api/v1/schedules/{schedule_with_secrets}").json()
        assert read["job"]["payload"] == WEBHOOK["payload"]
        sent_back = editor.patch(f"/api/v1/schedules/{schedule_with_secrets}", {"job": read["job"]}, format="json")
        assert sent_back.status_code == 200, sent_back.content
        assert sent_back.json()["job"]["payload"] == WEBHOOK["payload"]


def test_the_admin_shows_a_schedule_s_secrets_masked_to_staff_who_may_only_view_it(
    schedule_with_secrets: int,
) -> None:
    url = f"/admin/scheduler/schedule/{schedule_with_secrets}/change/"
    viewer = logged_in(account("carol", staff=True, role=VIEWER)).get(url)
    assert viewer.status_code == 200
    page = viewer.content.decode()
    assert SECRET not in page and MASK in page and "hooks.example.com" in page
    editor = logged_in(account("otto", staff=True, role=OPERATOR)).get(url)
    assert editor.status_code == 200 and SECRET in editor.content.decode()
