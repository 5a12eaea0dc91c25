"""``createtoken``: the README's production step works as written and gives a token that may act;
``--viewer`` and ``--operator`` grant the roles; keys exist only as hashes once printed."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from jobs import client
from jobs.models import ApiToken, Job, Status
from jobs.roles import ROLES
from jobs.tokens import create_token, kept_token
from tests.helpers import SEED_JOB
from tests.procs import manage

pytestmark = pytest.mark.django_db(transaction=True)

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_createtoken_line() -> list[str]:
    """The README's production ``createtoken`` command, as its words after ``python manage.py``."""
    [block] = [
        b for b in re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.DOTALL) if "manage.py migrate" in b
    ]
    [line] = [line for line in block.splitlines() if " createtoken " in line]
    words = shlex.split(line, comments=True)
    assert words[:2] == ["python", "manage.py"], line
    return words[2:]


def bearer(key: str) -> APIClient:
    return APIClient(HTTP_AUTHORIZATION=f"Bearer {key}")


def test_the_readmes_createtoken_step_works_as_written_and_its_token_may_act(broker: Any) -> None:
    words = readme_createtoken_line()
    done = manage(*words)
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    api = bearer(key)
    job_id = api.post("/api/v1/jobs", SEED_JOB, format="json").json()["id"]
    assert api.get(f"/api/v1/jobs/{job_id}").status_code == 200
    assert api.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 200
    assert api.post(f"/api/v1/jobs/{job_id}/retry").status_code == 200
    assert Job.objects.get(pk=job_id).status == Status.PENDING
    assert api.get("/api/v1/queues/emails/stats").status_code == 200
    assert manage(*words).returncode == 0, "running the step again must work too"


@pytest.mark.parametrize("flag", ["", "--viewer", "--operator"])
def test_each_role_flag_grants_exactly_its_role(broker: Any, flag: str) -> None:
    done = manage("createtoken", "robot", *([flag] if flag else []))
    assert done.returncode == 0, done.stderr
    api = bearer(done.stdout.strip())
    job = client.enqueue("test_noop", {}, delay="1h")
    reads = api.get(f"/api/v1/jobs/{job.pk}").status_code
    cancels = api.post(f"/api/v1/jobs/{job.pk}/cancel").status_code
    assert (reads, cancels) == {"": (403, 403), "--viewer": (200, 403), "--operator": (200, 200)}[flag]
    user = User.objects.get(username="robot")
    groups = set(user.groups.values_list("name", flat=True))
    assert groups == ({ROLES[flag[2:]][0]} if flag else set())


def test_viewer_and_operator_cannot_be_asked_together() -> None:
    done = manage("createtoken", "robot", "--viewer", "--operator")
    assert done.returncode == 2 and "not allowed with argument" in done.stderr
    assert not User.objects.exists()


def test_the_database_holds_only_a_hash_and_looks_keys_up_by_it(broker: Any) -> None:
    key = manage("createtoken", "robot", "--viewer").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{40}", key)
    stored = repr(list(ApiToken.objects.values()))
    assert key not in stored and key[:8] in stored
    with CaptureQueriesContext(connection) as queries:
        assert bearer(key).get("/api/v1/stats").status_code == 200
    sql = " ".join(q["sql"] for q in queries.captured_queries)
    assert "jobs_apitoken" in sql and key not in sql


def test_the_first_looks_token_is_kept_in_a_private_file_and_reused(tmp_path: Path) -> None:
    admin = User.objects.create_superuser("admin")
    path = tmp_path / "api-token"
    key = kept_token(admin, path)
    assert path.read_text() == key and path.stat().st_mode & 0o777 == 0o600
    assert kept_token(admin, path) == key and ApiToken.objects.count() == 1
    ApiToken.objects.all().delete()  # revoked in the admin: a new one is made
    again = kept_token(admin, path)
    assert again != key and path.read_text() == again
    other = create_token(User.objects.create_user("someone"))
    path.write_text(other)  # a key of another user is not taken
    assert kept_token(admin, path) not in (other, again)


@pytest.mark.parametrize(("flag", "may_act"), [("--viewer", False), ("--operator", True)])
def test_staff_with_a_role_logs_in_to_the_admin_and_the_dashboard_as_docs_operations_says(
    broker: Any, flag: str, may_act: bool
) -> None:
    """``createtoken <user> --staff --viewer`` (or ``--operator``), then a password: the admin and the dashboard."""
    done = manage("createtoken", "carol", "--staff", flag)
    assert done.returncode == 0, done.stderr
    user = User.objects.get(username="carol")
    assert user.is_staff and not user.is_superuser
    user.set_password("a-password-for-carol-7")  # what `manage.py changepassword carol` asks for at a terminal
    user.save()
    browser = Client()
    login = browser.post(
        "/admin/login/", {"username": "carol", "password": "a-password-for-carol-7", "next": "/admin/"}
    )
    assert login.status_code == 302 and login["Location"] == "/admin/"
    job = client.enqueue("test_noop", {}, delay="1h")
    assert browser.get("/dashboard/").status_code == 200
    assert browser.get(f"/admin/jobs/job/{job.pk}/change/").status_code == 200
    page = browser.get(f"/dashboard/jobs/{job.pk}/")
    assert page.status_code == 200 and (f"/dashboard/jobs/{job.pk}/cancel/" in page.content.decode()) == may_act
    cancel = browser.post(f"/dashboard/jobs/{job.pk}/cancel/")
    assert (cancel.status_code != 403) == may_act
    job.refresh_from_db()
    assert (job.status == Status.CANCELLED) == may_act
