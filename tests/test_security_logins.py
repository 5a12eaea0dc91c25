"""Issue 19, item 5: failed logins per client address are limited, for API tokens and the admin.

The attack: 200 random tokens in 0.93 s all got 401 and the next valid request still got 200; 30
wrong admin passwords did not stop the right one.
"""

from __future__ import annotations

import itertools
import re
import secrets
import uuid
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings
from rest_framework.test import APIClient

from jobs import auth_failures, rate_counter
from jobs.broker import reset_broker
from tests.helpers import override_zipline, token_client, wait_for
from zipline_site.config import ConfigError, load_config

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a-right-password-for-tests-7"


_next_address = itertools.count(secrets.randbelow(250))


def an_address() -> str:
    """A client address (TEST-NET-3) unlike the last 249 handed out, so that two clients of one test never share
    a counter (drawn at random, two of them once did: the other client found the first one's lockout)."""
    return f"203.0.113.{next(_next_address) % 250 + 1}"


def valid_token() -> str:
    """The key of a new token of a new superuser, made the way the suite makes tokens."""
    user = User.objects.create_superuser(f"u-{uuid.uuid4().hex[:6]}")
    header: str = token_client(user)._credentials["HTTP_AUTHORIZATION"]
    return header.split()[1]


def test_the_defaults_are_20_failures_in_10_minutes() -> None:
    defaults = load_config({})
    assert (defaults.security.auth_failure_limit, defaults.security.auth_failure_window) == (20, 600.0)
    assert load_config({"JQS_AUTH_FAILURE_WINDOW": "1h"}).security.auth_failure_window == 3600.0
    with pytest.raises(ConfigError, match="JQS_AUTH_FAILURE_LIMIT='0'"):
        load_config({"JQS_AUTH_FAILURE_LIMIT": "0"})


def test_200_random_tokens_then_a_valid_one_is_429(broker: Any) -> None:
    address, key = an_address(), valid_token()
    client = APIClient(REMOTE_ADDR=address)
    with override_zipline(auth_failure_limit=20, auth_failure_window=600.0):  # the defaults (tests/settings.py)
        codes = [
            client.get("/api/v1/stats", HTTP_AUTHORIZATION=f"Bearer {secrets.token_hex(20)}").status_code
            for _ in range(200)
        ]
        refused = client.get("/api/v1/stats", HTTP_AUTHORIZATION=f"Bearer {key}")
        other = APIClient(REMOTE_ADDR=an_address()).get("/api/v1/stats", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert codes == [401] * 20 + [429] * 180
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "throttled"
    assert "failed logins" in refused.json()["error"]["message"]
    assert 1 <= int(refused["Retry-After"]) <= 600
    assert other.status_code == 200  # counted per address


def test_the_429_says_once_when_to_try_again_and_retry_after_agrees(broker: Any) -> None:
    client = APIClient(REMOTE_ADDR=an_address())
    with override_zipline(auth_failure_limit=1, auth_failure_window=600.0):
        assert client.get("/api/v1/stats", HTTP_AUTHORIZATION="Bearer " + "x" * 40).status_code == 401
        refused = client.get("/api/v1/stats", HTTP_AUTHORIZATION="Bearer " + "x" * 40)
    wait = int(refused["Retry-After"])
    # DRF appends "Expected available in N seconds." to a Throttled's own message when given a wait.
    assert refused.json()["error"]["message"] == (
        f"too many failed logins from this address; try again in {wait} seconds"
    )


def test_the_lockout_ends_with_its_window(broker: Any) -> None:
    address, key = an_address(), valid_token()
    client = APIClient(REMOTE_ADDR=address)
    with override_zipline(auth_failure_limit=3, auth_failure_window=2.0):
        for _ in range(3):
            assert client.get("/api/v1/stats", HTTP_AUTHORIZATION="Bearer " + "x" * 40).status_code == 401
        for _ in range(5):  # refused attempts are not counted: they cannot stretch the lockout
            assert client.get("/api/v1/stats", HTTP_AUTHORIZATION="Bearer " + "x" * 40).status_code == 429
        assert client.get("/api/v1/stats", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 429
        count = rate_counter.peek(rate_counter.key("auth-failures", address), at_least=0)
        assert count is not None and count.count == 3 and 0 < count.seconds_left <= 2.0
        wait_for(lambda: auth_failures.blocked_for(address) is None, 5, message="the window to end")
        assert client.get("/api/v1/stats", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200


def test_a_bad_token_on_health_is_counted_and_health_still_answers(broker: Any) -> None:
    address = an_address()
    with override_zipline(auth_failure_limit=1):
        for _ in range(2):
            response = APIClient(REMOTE_ADDR=address).get("/health", HTTP_AUTHORIZATION="Bearer " + "x" * 40)
            assert response.status_code == 200 and "error" not in response.json()["redis"]
    count = rate_counter.peek(rate_counter.key("auth-failures", address))
    assert count is not None and count.count == 1  # the second was refused (blocked), not counted


def test_requests_without_a_token_are_not_counted(broker: Any) -> None:
    address = an_address()
    with override_zipline(auth_failure_limit=20):
        for _ in range(30):
            assert APIClient(REMOTE_ADDR=address).get("/api/v1/stats").status_code == 401
    count = rate_counter.peek(rate_counter.key("auth-failures", address))
    assert count is not None and count.count == 0


def test_a_forwarded_for_header_does_not_move_the_count_to_another_address(broker: Any) -> None:
    """docs/security.md: the address is the peer's; any client can send X-Forwarded-For (or X-Real-IP)."""
    address = an_address()
    with override_zipline(auth_failure_limit=3):
        codes = [
            APIClient(REMOTE_ADDR=address)
            .get(
                "/api/v1/stats",
                HTTP_AUTHORIZATION="Bearer " + "x" * 40,
                HTTP_X_FORWARDED_FOR=f"198.51.100.{n}",
                HTTP_X_REAL_IP=f"198.51.100.{n}",
            )
            .status_code
            for n in range(1, 6)
        ]
    assert codes == [401] * 3 + [429] * 2
    for n in range(1, 6):
        forwarded = rate_counter.peek(rate_counter.key("auth-failures", f"198.51.100.{n}"), at_least=0)
        assert forwarded is not None and forwarded.count == 0


@override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])  # 31 checks, fast
def test_30_wrong_admin_passwords_stop_the_right_one(broker: Any) -> None:
    user = User.objects.create_superuser(f"admin-{uuid.uuid4().hex[:6]}", password=PASSWORD)
    address = an_address()
    client = Client(REMOTE_ADDR=address)
    wrong = {"username": user.username, "password": "wrong", "next": "/admin/"}
    with override_zipline(auth_failure_limit=20):
        codes = [client.post("/admin/login/", wrong).status_code for _ in range(30)]
        right = client.post("/admin/login/", {**wrong, "password": PASSWORD})
        form = client.get("/admin/login/")
        elsewhere = Client(REMOTE_ADDR=an_address()).post("/admin/login/", {**wrong, "password": PASSWORD})
    assert codes == [200] * 20 + [429] * 10  # 200: the form again, with its error
    assert right.status_code == 429 and int(right["Retry-After"]) >= 1
    assert "_auth_user_id" not in client.session
    assert form.status_code == 200  # the form still shows
    assert elsewhere.status_code == 302 and elsewhere["Location"] == "/admin/"


def test_no_key_is_set_by_hand_and_a_wrong_key_is_counted(broker: Any) -> None:
    """Keys are 160 random bits made by ZipLine (the admin's form has no key field); a wrong one is counted."""

    from django.contrib import admin
    from django.test import RequestFactory

    from jobs import tokens
    from jobs.admin import ApiTokenAdmin
    from jobs.models import ApiToken

    user = User.objects.create_user(f"u-{uuid.uuid4().hex[:8]}")
    assert re.fullmatch(r"[0-9a-f]{40}", tokens.create_token(user))
    assert ApiTokenAdmin(ApiToken, admin.site).get_fields(RequestFactory().get("/")) == ("user", "name")
    address = an_address()
    response = APIClient(REMOTE_ADDR=address).get("/api/v1/stats", HTTP_AUTHORIZATION="Bearer " + "s" * 31)
    assert response.status_code == 401
    count = rate_counter.peek(rate_counter.key("auth-failures", address))
    assert count is not None and count.count == 1


def test_logins_still_work_while_redis_is_down(broker: Any) -> None:
    key, client = valid_token(), APIClient(REMOTE_ADDR=an_address())
    with override_zipline(auth_failure_limit=1), override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        reset_broker()
        try:
            assert client.get("/api/v1/jobs", HTTP_AUTHORIZATION="Bearer " + "x" * 40).status_code == 401
            assert client.get("/api/v1/jobs", HTTP_AUTHORIZATION="Bearer " + "x" * 40).status_code == 401
            assert client.get("/api/v1/jobs", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200
        finally:
            reset_broker()
