"""``make run`` as a user runs it: ``python -m zipline_site.firstlook`` in a session of its own (as a
terminal runs it), with a ``.local/`` of the test's own (``ZIPLINE_LOCAL_DIR``), the shared Redis under a
key prefix of the test's own, and the API on a free port.

- one Ctrl-C (SIGINT to the whole process group, as a terminal sends it) drains a running job, and so
  does a closed terminal (SIGHUP); a second Ctrl-C hands it back;
- ``manage.py`` run with no ``JQS_*`` variable reaches make run's database, secret and Redis;
- the API listens on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest
import redis
from django.conf import settings as django_settings

from tests.procs import ROOT, free_port
from zipline_site import localenv
from zipline_site.config import SETTINGS
from zipline_site.firstlook import first_look_environment

pytestmark = pytest.mark.slow


def _redis_url() -> str:
    """The tests' Redis database (tests/settings.py)."""
    return str(django_settings.REDIS_URL)


@dataclass
class FirstLook:
    popen: subprocess.Popen[bytes]
    local: Path
    log: Path
    prefix: str
    port: int
    children: list[int]

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _user_environment(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: no ZipLine setting at all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JQS_", "DJANGO_", "ZIPLINE_"))}
    env.update({"PYTHONUNBUFFERED": "1", **extra})
    return env


def _wait(condition: Callable[[], object], timeout: float, what: str, look: FirstLook) -> None:
    """Wait until ``condition()`` holds; fails naming ``what`` if it does not in time or make run exits."""
    deadline = time.monotonic() + timeout
    while not condition():
        if look.popen.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{what} (make run exited with {look.popen.poll()}):\n{look.output()[-4000:]}")
        time.sleep(0.05)


@contextmanager
def first_look(tmp_path: Path, settings_module: str = "zipline_site.settings", **settings: str) -> Iterator[FirstLook]:
    """``make run`` (with ``settings`` added to its environment) until the end of the block; then it and
    every process it started are killed."""
    local, prefix, port = tmp_path / "local", f"ziptest-fl-{uuid.uuid4().hex[:8]}", free_port()
    env = _user_environment(
        ZIPLINE_LOCAL_DIR=str(local),
        DJANGO_SETTINGS_MODULE=settings_module,
        JQS_REDIS_URL=_redis_url(),
        JQS_REDIS_KEY_PREFIX=prefix,
        JQS_SERVER_PORT=str(port),
        JQS_SERVER_GRPC_PORT=str(free_port()),
        JQS_METRICS_ENABLED="false",
        JQS_WORKER_COUNT="1",
        JQS_WORKER_MAX_CONCURRENCY="4",
        JQS_LOG_LEVEL="info",
    )
    env.update(settings)
    log = tmp_path / "make-run.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", "zipline_site.firstlook"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal's session: the test signals its foreground group
        )
    look = FirstLook(popen, local, log, prefix, port, [])
    try:
        _wait(lambda: "manage.py in this checkout" in look.output(), 90, "no banner", look)
        found = subprocess.run(["pgrep", "-P", str(popen.pid)], capture_output=True, text=True)
        look.children = [int(pid) for pid in found.stdout.split()]
        yield look
    finally:
        for group in [popen.pid, *look.children]:  # the children lead groups of their own
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
        popen.wait(timeout=10)
        client = redis.Redis.from_url(_redis_url())
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)


def _manage_as_a_user(look: FirstLook, code: str, settings_module: str) -> subprocess.CompletedProcess[str]:
    """``manage.py shell -c code`` from the checkout, in a shell that set no ZipLine variable."""
    env = _user_environment(ZIPLINE_LOCAL_DIR=str(look.local), DJANGO_SETTINGS_MODULE=settings_module)
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )


def _listening_addresses(port: int) -> set[str]:
    """The local addresses (hex, as the kernel lists them) of TCP sockets listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP], ids=["ctrl-c", "terminal-closed"])
def test_one_ctrl_c_drains_a_running_job(tmp_path: Path, signum: int) -> None:
    with first_look(tmp_path, "tests.settings") as look:
        ledger = f"{look.prefix}:ledger"
        submitted = _manage_as_a_user(
            look,
            f"from jobs import enqueue; print(enqueue('test_sleep', {{'seconds': 2, 'key': '{ledger}'}}).id)",
            "tests.settings",
        )
        assert submitted.returncode == 0, submitted.stderr
        job_id = submitted.stdout.split()[-1]
        client = redis.Redis.from_url(_redis_url())
        _wait(lambda: cast(int, client.llen(ledger)) >= 1, 30, "the job never started", look)

        os.killpg(look.popen.pid, signum)  # Ctrl-C or a hang-up: the terminal signals its foreground group
        try:
            look.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"make run did not stop:\n{look.output()[-4000:]}") from None

        events = [entry.decode().split("|")[3] for entry in cast(list[bytes], client.lrange(ledger, 0, -1))]
        assert events == ["start", "end"], f"the running job was not drained:\n{look.output()[-4000:]}"
        with sqlite3.connect(look.local / "zipline.sqlite3") as db:
            status = db.execute("SELECT status, attempts FROM jobs_job WHERE id = ?", (job_id.replace("-", ""),))
            assert status.fetchone() == ("completed", 1)
        assert look.output().count("stopping: draining running jobs") == 1
        assert "handing running jobs back now" not in look.output()
        assert look.popen.returncode == 0
        assert len(look.children) == 4 and not [pid for pid in look.children if _alive(pid)]


def test_a_second_ctrl_c_hands_the_running_job_back(tmp_path: Path) -> None:
    with first_look(tmp_path, "tests.settings") as look:
        ledger = f"{look.prefix}:ledger"
        submitted = _manage_as_a_user(
            look,
            f"from jobs import enqueue; print(enqueue('test_sleep', {{'seconds': 60, 'key': '{ledger}'}}).id)",
            "tests.settings",
        )
        assert submitted.returncode == 0, submitted.stderr
        job_id = submitted.stdout.split()[-1]
        client = redis.Redis.from_url(_redis_url())
        _wait(lambda: cast(int, client.llen(ledger)) >= 1, 30, "the job never started", look)

        os.killpg(look.popen.pid, signal.SIGINT)
        _wait(lambda: "stopping: draining running jobs" in look.output(), 10, "no drain", look)
        os.killpg(look.popen.pid, signal.SIGINT)
        try:
            look.popen.wait(timeout=20)  # well before the job's 60 s
        except subprocess.TimeoutExpired:
            raise AssertionError(f"make run did not stop:\n{look.output()[-4000:]}") from None

        assert "handing running jobs back now" in look.output()
        with sqlite3.connect(look.local / "zipline.sqlite3") as db:
            status = db.execute("SELECT status FROM jobs_job WHERE id = ?", (job_id.replace("-", ""),))
            assert status.fetchone() == ("pending",), look.output()[-4000:]


def test_manage_py_reaches_make_runs_database_secret_and_redis(tmp_path: Path) -> None:
    with first_look(tmp_path) as look:
        secret = (look.local / "secret_key").read_text().strip()
        # Submitted from manage.py, run by make run's workers: the same database and Redis.
        result = _manage_as_a_user(
            look,
            "import time\n"
            "from django.conf import settings\n"
            "from django.contrib.auth.models import User\n"
            "from jobs import enqueue, get\n"
            "job = enqueue('send_email', {'email': 'a@example.com', 'subject': 's', 'body': 'b'})\n"
            "deadline = time.monotonic() + 30\n"
            "while get(job.id).status != 'completed' and time.monotonic() < deadline:\n"
            "    time.sleep(0.05)\n"
            f"print(get(job.id).status, User.objects.filter(username='admin').exists(), settings.SECRET_KEY == {secret!r})",
            "zipline_site.settings",
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.split()[-3:] == ["completed", "True", "True"], result.stdout + result.stderr
        assert f"using make run's settings from {look.local / 'env'}" in result.stderr
        # The file is the settings make run used, readable by its owner only; so is the folder, which holds
        # the SQLite file (password and token hashes, payloads) that Django makes readable by everyone.
        assert (look.local / "env").stat().st_mode & 0o777 == 0o600
        assert look.local.stat().st_mode & 0o777 == 0o700
        written = localenv.read(look.local / "env")
        assert written["JQS_REDIS_KEY_PREFIX"] == look.prefix and written["JQS_SECRET_KEY"] == secret
        # A shell that sources it gets the same values.
        sourced = subprocess.run(
            ["bash", "-c", f". {look.local / 'env'} && env"],
            env=_user_environment(),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert dict(line.split("=", 1) for line in sourced.stdout.splitlines() if line.startswith("JQS_")) == written
        assert f". {look.local / 'env'}" in look.output()


def test_make_run_listens_on_127_0_0_1_only(tmp_path: Path) -> None:
    metrics_port, grpc_port = free_port(), free_port()
    with first_look(
        tmp_path, JQS_METRICS_ENABLED="true", JQS_METRICS_PORT=str(metrics_port), JQS_SERVER_GRPC_PORT=str(grpc_port)
    ) as look:
        _wait(lambda: _listening_addresses(look.port), 30, "the API never listened", look)
        assert _listening_addresses(look.port) == {"0100007F"}  # 127.0.0.1, and no other address
        _wait(lambda: _listening_addresses(grpc_port), 30, "the gRPC API never listened", look)
        # gRPC's core listens on an IPv6 socket even for 127.0.0.1: the address is IPv4-mapped (::ffff:127.0.0.1).
        assert _listening_addresses(grpc_port) <= {"0100007F", "0000000000000000FFFF00000100007F"}
        assert f"gRPC API      127.0.0.1:{grpc_port}" in look.output()
        if "JQS_METRICS_HOST" in {setting.env for setting in SETTINGS}:  # the workers' metrics address
            _wait(lambda: _listening_addresses(metrics_port), 30, "the workers' metrics never listened", look)
            assert _listening_addresses(metrics_port) == {"0100007F"}
        settings = localenv.read(look.local / "env")
        assert settings["JQS_SERVER_HOST"] == settings["JQS_METRICS_HOST"] == "127.0.0.1"


def test_make_run_takes_the_addresses_it_is_told(tmp_path: Path) -> None:
    told = first_look_environment({"JQS_SERVER_HOST": "0.0.0.0", "JQS_METRICS_HOST": "::"}, tmp_path)
    assert (told["JQS_SERVER_HOST"], told["JQS_METRICS_HOST"]) == ("0.0.0.0", "::")
    default = first_look_environment({}, tmp_path)
    assert (default["JQS_SERVER_HOST"], default["JQS_METRICS_HOST"]) == ("127.0.0.1", "127.0.0.1")
    assert default["JQS_DATABASE_URL"] == f"sqlite:///{tmp_path / 'zipline.sqlite3'}"


def test_the_banner_prints_the_addresses_in_use_and_says_when_metrics_are_off(tmp_path: Path) -> None:
    from zipline_site.config import load_config
    from zipline_site.firstlook import banner

    creds = {"token": "t" * 40, "password": "pw"}
    base = {"JQS_SECRET_KEY": "x", "JQS_SERVER_HOST": "0.0.0.0", "JQS_METRICS_HOST": "::1", "JQS_METRICS_PORT": "9191"}
    text = banner(load_config(base), ["api", "workers"], creds, tmp_path / "env")
    assert "http://127.0.0.1:8080/api/v1/" in text and "http://[::1]:9191/metrics (workers)" in text
    text = banner(load_config({**base, "JQS_METRICS_ENABLED": "false"}), ["api"], creds, tmp_path / "env")
    assert "Metrics       off (JQS_METRICS_ENABLED=false)" in text and ":9191" not in text
    assert "gRPC API      not started: port 9090 is in use" in text
    text = banner(load_config(base), ["api", "grpc"], creds, tmp_path / "env")
    assert "gRPC API      127.0.0.1:9090  (same token; docs/grpc.md)" in text


def test_make_run_sees_a_taken_port() -> None:
    from zipline_site.firstlook import port_free

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert not port_free("127.0.0.1", port)
    assert port_free("127.0.0.1", port)


def test_make_run_takes_a_redis_cluster_as_told_and_never_swaps_in_the_stand_in() -> None:
    """A cluster URL is not one redis-py's single-node client parses: make run keeps it rather than fail or
    replace the user's cluster with the in-memory stand-in."""
    from tests.procs import free_port
    from zipline_site.firstlook import _redis_answers

    nobody = free_port()
    assert _redis_answers(f"redis+cluster://127.0.0.1:{nobody},127.0.0.1:{free_port()}")
    assert _redis_answers(f"redis://127.0.0.1:{nobody}/0", cluster=True)
    assert not _redis_answers(f"redis://127.0.0.1:{nobody}/0")  # one node that does not answer: the stand-in
