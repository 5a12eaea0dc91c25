"""JQS_HTTPS: behind a TLS proxy, cookies are Secure, HSTS is sent, and ``check --deploy`` has nothing to say.

Real ``manage.py`` processes, since the settings are read once at start-up.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# A request through the TLS proxy (X-Forwarded-Proto: https) for the admin's login page, which sets the
# CSRF cookie; prints the cookie's Secure flag and the HSTS header.
_PROBE = """
from django.test import Client
response = Client(HTTP_X_FORWARDED_PROTO="https").get("/admin/login/")
print(response.status_code, bool(response.cookies["csrftoken"]["secure"]), response.get("Strict-Transport-Security"))
"""


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("JQS_")}
    full_env.update(
        {
            "DJANGO_SETTINGS_MODULE": "zipline_site.settings",
            "JQS_SECRET_KEY": secrets.token_urlsafe(50),
            "JQS_DATABASE_URL": os.environ["JQS_DATABASE_URL"],
            "JQS_ALLOWED_HOSTS": "testserver",
            **env,
        }
    )
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=60
    )


def test_check_deploy_has_no_warning_with_https_on() -> None:
    result = _manage("check", "--deploy", "--fail-level", "WARNING", JQS_HTTPS="true")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_names_the_cookie_and_hsts_warnings_with_https_off() -> None:
    result = _manage("check", "--deploy", JQS_HTTPS="false")
    found = set(re.findall(r"security\.W\d+", result.stdout + result.stderr))
    assert {"security.W004", "security.W012", "security.W016"} <= found, result.stdout + result.stderr


def test_https_makes_cookies_secure_and_sends_hsts() -> None:
    on = _manage("shell", "-c", _PROBE, JQS_HTTPS="true")
    assert on.returncode == 0, on.stderr
    assert on.stdout.splitlines()[-1].split() == ["200", "True", "max-age=31536000;", "includeSubDomains;", "preload"]
    off = _manage("shell", "-c", _PROBE)
    assert off.returncode == 0, off.stderr
    assert off.stdout.splitlines()[-1].split() == ["200", "False", "None"], (
        "make run is plain HTTP: its cookies must work there"
    )
