"""Who may call what, over every API route and dashboard view, read from the URL configuration.

Each route and method is asked by five callers: anonymous, a token (or staff login) without
permissions, a viewer, an operator and a superuser (the roles of :mod:`jobs.roles`). The rule: reading
needs a viewer, anything else an operator, except submitting, which any token may do. A route added
later is in the matrix at once and must follow the rule, or be named in ``OPEN_TO_ANY_TOKEN``; a
failure names the route, the method, the caller, what was expected and what came back.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.test import APIClient

from jobs import client
from jobs.roles import OPERATOR, VIEWER, grant_role
from jobs.tokens import create_token
from scheduler.models import Schedule
from tests.helpers import SEED_JOB

pytestmark = pytest.mark.django_db

#: Route names (and methods) any valid token may use.
OPEN_TO_ANY_TOKEN = {
    ("api-jobs", "post"),
    ("api-jobs-batch", "post"),
    ("api-workflows", "post"),
    ("api-batches", "post"),
}

CALLERS = ("anonymous", "no permissions", "viewer", "operator", "superuser")
RANK = {"no permissions": 1, "viewer": 2, "operator": 3, "superuser": 4}

SCHEDULE = {
    "name": "matrix",
    "cron": "0 3 * * *",
    "timezone": "UTC",
    "job": {"type": "test_noop", "payload": {}, "queue": "matrix"},
}
#: Bodies the routes need to get past their permission check and mean something; others get none.
BODIES: dict[tuple[str, str], Any] = {
    ("api-jobs", "post"): SEED_JOB,
    ("api-jobs-batch", "post"): {"jobs": [SEED_JOB]},
    ("api-workflows", "post"): {"jobs": [{**SEED_JOB, "ref": "seed"}]},
    ("schedule-list", "post"): SCHEDULE,
}


@dataclass(frozen=True)
class Route:
    name: str  # with its namespace
    route: str  # as written in the URL configuration
    params: tuple[str, ...]
    view: Any

    def __str__(self) -> str:
        return self.route


def _walk(patterns: list[Any], prefix: str = "", namespace: str = "") -> Iterator[Route]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}:{entry.namespace}" if entry.namespace and namespace else entry.namespace or namespace
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern), inner or "")
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}" if namespace and entry.name else entry.name or ""
            params = tuple(entry.pattern.regex.groupindex)
            yield Route(name, prefix + str(entry.pattern), params, entry.callback)


def guarded_routes() -> list[Route]:
    """Every route of the API (``api/v1/``) and the dashboard (``dashboard/``)."""
    return [
        r
        for r in _walk(get_resolver().url_patterns)
        if r.route.lstrip("^").startswith(("api/v1/", "dashboard/")) and "format" not in r.params
    ]


ROUTES = guarded_routes()


def test_the_matrix_covers_the_api_and_the_dashboard() -> None:
    names = {r.name for r in ROUTES}
    for expected in ("api-jobs", "api-job-cancel", "api-worker-stats", "schedule-detail", "dashboard:job"):
        assert expected in names, f"{expected} is missing from the routes the matrix found: {sorted(names)}"
    unnamed = [r.route for r in ROUTES if not r.name]
    assert not unnamed, f"routes without a name cannot be reversed by the matrix: {unnamed}"


@dataclass
class World:
    """What the routes' parameters point at, and one client per caller."""

    params: dict[str, str]
    api: dict[str, APIClient]
    browser: dict[str, Client]


def user(role: str) -> User:
    name = f"{role.replace(' ', '-')}-{uuid.uuid4().hex[:6]}"
    if role == "superuser":
        return User.objects.create_superuser(name)
    account = User.objects.create_user(name, is_staff=True)
    if role in (VIEWER, OPERATOR):
        grant_role(account, role)
    return account


@pytest.fixture
def world(broker: Any) -> World:
    job = client.enqueue("test_noop", {}, delay="1h")
    schedule = Schedule.objects.create(name="matrix-one", cron="0 3 * * *", timezone="UTC", job_type="test_noop")
    params = {"job_id": str(job.pk), "pk": str(schedule.pk), "queue_name": "matrix", "name": "matrix"}
    params["section"] = "overview"
    params["workflow_id"] = str(client.workflow([{"ref": "a", "type": "test_noop"}]).pk)
    params["batch_id"] = str(client.create_batch(open=True).pk)
    api: dict[str, APIClient] = {"anonymous": APIClient()}
    browser: dict[str, Client] = {"anonymous": Client()}
    for role in CALLERS[1:]:
        account = user(role)
        api[role] = APIClient(HTTP_AUTHORIZATION=f"Bearer {create_token(account)}")
        browser[role] = Client(headers={"X-Requested-With": "fetch"})
        browser[role].force_login(account)
    return World(params, api, browser)


def methods(route: Route, world: World) -> list[str]:
    """The methods a route answers: a DRF view's handlers, a viewset's actions; for a dashboard view,
    GET and POST unless it refuses them with 405 (asked as a superuser)."""
    view = route.view
    if getattr(view, "actions", None):
        return sorted(view.actions)
    cls = getattr(view, "cls", None)
    if cls is not None:
        return [m for m in ("get", "post", "put", "patch", "delete") if hasattr(cls, m)]
    superuser = world.browser["superuser"]
    return [m for m in ("get", "post") if getattr(superuser, m)(url(route, world)).status_code != 405]


def url(route: Route, world: World) -> str:
    unknown = [p for p in route.params if p not in world.params]
    assert not unknown, f"{route}: the matrix has no value for the parameter(s) {unknown}; add them to world()"
    return reverse(route.name, kwargs={p: world.params[p] for p in route.params})


def expected(route: Route, method: str, caller: str) -> str:
    if caller == "anonymous":
        return "unauthenticated"
    short = route.name.split(":")[-1]
    if (short, method) in OPEN_TO_ANY_TOKEN and route.route.startswith("api/"):
        needed = 1
    else:
        needed = RANK[VIEWER] if method == "get" else RANK[OPERATOR]
    return "allowed" if RANK[caller] >= needed else "denied"


def outcome(response: Any) -> str:
    status = response.status_code
    if status >= 500:
        return f"server error {status}"
    if status == 401 or (status == 302 and response["Location"].startswith("/admin/login/")):
        return "unauthenticated"
    return "denied" if status == 403 else "allowed"


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_every_route_follows_the_permission_rule(route: Route, world: World) -> None:
    is_api = route.route.startswith("api/")
    path = url(route, world)
    wrong = []
    answered = methods(route, world)
    assert answered, f"{route} ({route.name}) answers no method the matrix knows"
    for method in answered:
        body = BODIES.get((route.name, method))
        for caller in CALLERS:
            caller_client = world.api[caller] if is_api else world.browser[caller]
            send = getattr(caller_client, method)
            response = send(path, body, format="json") if is_api and body is not None else send(path)
            want, got = expected(route, method, caller), outcome(response)
            if want != got:
                wrong.append(
                    f"{method.upper()} {path} ({route.name}) as {caller}: expected {want}, got {got} "
                    f"({response.status_code} {response.content[:120]!r})"
                )
    if wrong:
        pytest.fail("\n".join(wrong), pytrace=False)
