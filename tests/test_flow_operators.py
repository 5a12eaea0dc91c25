"""Operators see and set a queue's limits in the dashboard and in the admin, through the service
function behind ``PATCH /api/v1/queues/{name}``: the same values accepted, the same refused (next to
the field), what the limits hold shown on the queue cards, the limits page and the admin's page."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from rest_framework.test import APIClient

from jobs import client, queue_limits
from jobs.broker import Broker
from jobs.models import QueueState
from tests.helpers import EMAIL_PAYLOAD

pytestmark = pytest.mark.django_db(transaction=True)

FULL = {
    "concurrency": "4",
    "rate_limit": "100/s",
    "rate_burst": "5",
    "group_concurrency": "1",
    "group_rate_limit": "",
    "group_rate_burst": "",
}


def logged_in(superuser: bool = False, perms: tuple[str, ...] = ()) -> Client:
    account = User.objects.create_user(f"op-{uuid.uuid4().hex[:8]}", is_staff=True, is_superuser=superuser)
    for codename in perms:
        account.user_permissions.add(Permission.objects.get(codename=codename, content_type__app_label="jobs"))
    browser = Client()
    browser.force_login(account)
    return browser


@pytest.fixture
def operator(broker: Broker) -> Client:
    return logged_in(superuser=True)


def text(response: Any) -> str:
    return str(response.content.decode())


def held_queue(broker: Broker, name: str) -> None:
    """Group a runs one job and holds two behind group_concurrency 1."""
    QueueState.objects.create(name=name, group_concurrency=1)
    for _ in range(3):
        client.enqueue("send_email", EMAIL_PAYLOAD, queue=name, group="a")
    limits = queue_limits.LimitBook().get(name)
    assert len(broker.claim(name, "w", 10, 30_000, limits=limits).ids) == 1
    broker.claim(name, "w", 10, 30_000, limits=limits)


def test_queue_cards_show_each_limit_running_and_held(operator: Client, broker: Broker) -> None:
    held_queue(broker, "cards")
    html = text(operator.get("/dashboard/"))
    card = html.split('data-testid="queue-cards"', 1)[1].split("</article>", 1)[0]
    row = card.split('data-limit="group_concurrency"', 1)[1].split("</tr>", 1)[0]
    assert "Each group&#x27;s concurrency" in row and '<td class="num">1</td>' in row
    assert '<td class="num" data-held>2</td>' in row
    assert 'href="/dashboard/queues/cards/limits/"' in card


def test_the_limits_page_sets_them_through_the_service(operator: Client, broker: Broker) -> None:
    page = text(operator.get("/dashboard/queues/mail/limits/"))
    assert "No limit is in force" in page and 'data-testid="limits-form"' in page
    response = operator.post("/dashboard/queues/mail/limits/", FULL, follow=True)
    assert response.redirect_chain == [("/dashboard/queues/mail/limits/", 302)]
    assert "Limits of queue mail saved" in text(response)
    row = QueueState.objects.get(name="mail")
    assert (row.concurrency, row.rate_limit, row.rate_burst, row.group_concurrency) == (4, "100/s", 5, 1)
    assert queue_limits.load(["mail"])["mail"].group_rate is None
    assert 'data-limit="queue_rate"' in text(response) and "100/s (burst 5)" in text(response)
    operator.post("/dashboard/queues/mail/limits/", {**FULL, "concurrency": ""})
    assert QueueState.objects.get(name="mail").concurrency is None  # empty: back to the default


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("rate_limit", "10/fortnight", "is not a rate"),
        ("group_rate_limit", "0/s", "the count must be at least 1"),
        ("concurrency", "0", "is not a concurrency"),
        ("group_rate_burst", "-1", "is not a burst"),
    ],
)
def test_a_refused_limit_is_shown_next_to_its_field(
    operator: Client, api: APIClient, field: str, value: str, says: str
) -> None:
    """The dashboard refuses what the API refuses (a 400 naming the same field)."""
    response = operator.post("/dashboard/queues/mail/limits/", {**FULL, field: value})
    assert response.status_code == 400
    error = text(response).split(f'data-testid="error-{field}"', 1)[1].split("</span>", 1)[0]
    assert says in error
    refused = api.patch(
        "/api/v1/queues/mail", {field: int(value) if value.lstrip("-").isdigit() else value}, format="json"
    )
    assert refused.status_code == 400 and field in refused.json()["error"]["details"]
    assert not QueueState.objects.filter(name="mail").exists()  # nothing written


def test_only_staff_with_change_queuestate_may_set_limits(broker: Broker) -> None:
    viewer = logged_in(perms=("view_job",))
    assert 'data-testid="limits-form"' not in text(viewer.get("/dashboard/queues/mail/limits/"))
    assert viewer.post("/dashboard/queues/mail/limits/", FULL).status_code == 403
    assert not QueueState.objects.filter(name="mail").exists()
    csrf = Client(enforce_csrf_checks=True)
    csrf.force_login(User.objects.create_superuser(f"root-{uuid.uuid4().hex[:6]}"))
    assert csrf.post("/dashboard/queues/mail/limits/", FULL).status_code == 403
    assert Client().get("/dashboard/queues/mail/limits/").status_code == 302  # to the login
    assert logged_in(superuser=True).get("/dashboard/queues/a%20b/limits/").status_code == 404


def test_the_admin_edits_limits_with_the_same_checks(operator: Client, broker: Broker) -> None:
    data = {"name": "adm", "paused": "", **FULL}
    response = operator.post("/admin/jobs/queuestate/add/", {**data, "rate_limit": "-1/s"})
    assert response.status_code == 200 and "is not a rate" in text(response)
    assert not QueueState.objects.filter(name="adm").exists()
    operator.post("/admin/jobs/queuestate/add/", data, follow=True)
    row = QueueState.objects.get(name="adm")
    assert (row.concurrency, row.rate_limit, row.group_concurrency) == (4, "100/s", 1)
    change = f"/admin/jobs/queuestate/{row.pk}/change/"
    operator.post(change, {**data, "group_concurrency": "0"})
    assert QueueState.objects.get(name="adm").group_concurrency == 1  # refused, kept
    operator.post(change, {**data, "group_concurrency": "2"}, follow=True)
    assert QueueState.objects.get(name="adm").group_concurrency == 2


def test_the_admin_shows_what_the_limits_hold(operator: Client, broker: Broker) -> None:
    held_queue(broker, "adm-held")
    row = QueueState.objects.get(name="adm-held")
    page = text(operator.get(f"/admin/jobs/queuestate/{row.pk}/change/"))
    table = page.split('data-testid="held-now"', 1)[1].split("</table>", 1)[0]
    assert "<td>Each group&#x27;s concurrency</td><td>1</td><td>1</td><td>2</td>" in table
    assert "group_concurrency 1" in text(operator.get("/admin/jobs/queuestate/"))
