"""Tokens made before hashing (DRF's ``authtoken`` table, keys in plain text) keep working after
``jobs.0002_apitoken``, and the plain keys are gone from the database."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
from rest_framework.test import APIClient

from jobs.models import ApiToken

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("jobs", "0001_initial")
HASHING = ("jobs", "0002_apitoken")
LEGACY_TABLE = "authtoken_token"
# The table as DRF's authtoken app made it.
LEGACY_DDL = (
    f"CREATE TABLE {LEGACY_TABLE} (key varchar(40) NOT NULL PRIMARY KEY, created timestamp with time zone NOT NULL,"
    " user_id integer NOT NULL UNIQUE REFERENCES auth_user (id))"
)


def migrate(target: tuple[str, str] | None) -> None:
    executor = MigrationExecutor(connection)
    targets = [target] if target else executor.loader.graph.leaf_nodes()
    executor.migrate(targets)


@pytest.fixture
def before_hashing() -> Iterator[None]:
    """The database as it was before tokens were hashed; put back to the latest migrations after."""
    migrate(BEFORE)
    with connection.cursor() as cursor:
        cursor.execute(LEGACY_DDL)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {LEGACY_TABLE}")
        migrate(None)


def legacy_keys() -> list[Any]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT key FROM {LEGACY_TABLE}")  # noqa: S608 - a constant
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.parametrize(
    "key",
    [secrets.token_hex(20), "ci-robot-7"],  # what DRF made (40 hex characters); one an admin typed in
    ids=["made-by-drf", "short-set-by-hand"],
)
def test_a_key_made_before_hashing_still_authenticates_after_it(before_hashing: None, broker: Any, key: str) -> None:
    user = User.objects.create_user("legacy-robot")
    user.user_permissions.add(Permission.objects.get(codename="view_job", content_type__app_label="jobs"))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {LEGACY_TABLE} (key, created, user_id) VALUES (%s, %s, %s)",  # noqa: S608
            [key, timezone.now(), user.pk],
        )

    migrate(HASHING)

    assert legacy_keys() == [], "the plain keys must not stay in the old table"
    [token] = ApiToken.objects.all()
    assert (token.user_id, token.prefix, token.digest) == (user.pk, key[:8], hashlib.sha256(key.encode()).hexdigest())
    assert key not in repr(list(ApiToken.objects.values()))
    migrate(None)  # the rest of an upgrade: the API's queries need the latest schema
    response = APIClient().get("/api/v1/stats", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 200, response.content
