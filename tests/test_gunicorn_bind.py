"""gunicorn listens where the configuration says (JQS_SERVER_HOST, JQS_SERVER_PORT); a ``--bind`` flag wins.

Real gunicorn processes on free ports; each answers a real HTTP request at the address it logged.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.procs import free_port
from zipline_site.config import load_config, server_address

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = str(Path(sys.executable).parent / "gunicorn")
COMMAND = [GUNICORN, "zipline_site.asgi:application", "--config", "python:zipline_site.gunicorn", "--workers", "1"]


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JQS_", "DJANGO_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "zipline_site.settings",
            "JQS_SECRET_KEY": "gunicorn-bind-test",
            "JQS_REDIS_URL": os.environ["JQS_REDIS_URL"],
            "JQS_DATABASE_URL": os.environ["JQS_DATABASE_URL"],
            "JQS_ALLOWED_HOSTS": "127.0.0.1",
            "JQS_METRICS_ENABLED": "false",
            **settings,
        }
    )
    return env


@contextmanager
def _gunicorn(args: list[str], env: dict[str, str], log: Path) -> Iterator[str]:
    """Start gunicorn; yields the address it says it listens at (from its log), and stops it after."""
    with log.open("wb") as out:
        server = subprocess.Popen([*COMMAND, *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while not (found := re.search(r"Listening at: http://(\S+) ", log.read_text())):
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"gunicorn did not start listening:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)
        yield found.group(1)
    finally:
        server.terminate()
        server.wait(timeout=15)


def _answers(address: str) -> int:
    """The HTTP status of /health at ``address`` (200 or 503: either proves a server answers there)."""
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"http://{address}/health", timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # the worker is still booting


def test_gunicorn_binds_from_the_settings(tmp_path: Path) -> None:
    port = free_port()
    with _gunicorn([], _env(JQS_SERVER_HOST="127.0.0.1", JQS_SERVER_PORT=str(port)), tmp_path / "g.log") as address:
        assert address == f"127.0.0.1:{port}"
        assert _answers(address) in (200, 503)


def test_a_bind_flag_wins_over_the_settings(tmp_path: Path) -> None:
    configured, flag = free_port(), free_port()
    env = _env(JQS_SERVER_HOST="127.0.0.1", JQS_SERVER_PORT=str(configured))
    with _gunicorn(["--bind", f"127.0.0.1:{flag}"], env, tmp_path / "g.log") as address:
        assert address == f"127.0.0.1:{flag}"
        assert _answers(address) in (200, 503)


def test_a_bad_port_stops_gunicorn_with_one_line_and_status_2() -> None:
    result = subprocess.run(
        COMMAND, cwd=ROOT, env=_env(JQS_SERVER_PORT="99999"), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        "zipline: configuration error: JQS_SERVER_PORT='99999': expected a whole number from 1 to 65535"
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "0.0.0.0:8080"),
        ({"JQS_SERVER_HOST": "10.1.2.3", "JQS_SERVER_PORT": "9000"}, "10.1.2.3:9000"),
        ({"JQS_SERVER_HOST": "::1", "JQS_SERVER_PORT": "9000"}, "[::1]:9000"),
    ],
)
def test_server_address(env: dict[str, str], expected: str) -> None:
    assert server_address(load_config(env)) == expected
