"""``GET /api/v1/jobs/{id}?wait=30s`` on a real served API: gunicorn with uvicorn's worker (the
production command, ``zipline_site.asgi``) as a subprocess on the test's database and Redis prefix.

A job ends in this process (a cancel through the service, which publishes its id after the commit, as
every ending does); the waiting request must answer within tens of milliseconds of the row's
``completed_at`` (no polling), at the limit when the job does not end, and 200 waiters at once must cost
the server connections, not threads or memory per waiter.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from jobs import client, service
from jobs.tokens import create_token
from tests.procs import ROOT, free_port, process_env, running, wait_for_workers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

GUNICORN = str(Path(sys.executable).parent / "gunicorn")
#: How long after the row's end the answer may arrive. The issue asks 50 ms: about 20 ms is measured on a
#: quiet 2-core machine (the figures are printed), 40-75 ms while other suites run on it. The bounds
#: asserted keep a loaded machine from failing the test, yet are far below any polling interval that
#: would save queries (a poll every second misses an end by ~500 ms on average).
MEDIAN_LIMIT = 0.150
SLOWEST_LIMIT = 0.500


class Served:
    def __init__(self, port: int, token: str, popen: subprocess.Popen[bytes], log: Path) -> None:
        self.port, self.token, self.popen, self.log = port, token, popen, log

    def get(self, path: str, token: str | None = "", timeout: float = 90.0) -> tuple[int, dict[str, str], Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = {"Host": "localhost"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token or self.token}"
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(body or b"null")
        finally:
            conn.close()

    def worker_pid(self) -> int:
        out = subprocess.run(["pgrep", "-P", str(self.popen.pid)], capture_output=True, text=True)
        pids = [int(p) for p in out.stdout.split()]
        assert len(pids) == 1, f"expected one gunicorn worker, found {pids}"
        return pids[0]


@pytest.fixture
def served(broker: Any, tmp_path: Path) -> Iterator[Served]:
    user = get_user_model().objects.create_superuser("waiter", password="unused-password-x1")
    token = create_token(user)
    port = free_port()
    log = tmp_path / "gunicorn.log"
    env = process_env(
        JQS_ALLOWED_HOSTS="localhost,127.0.0.1",
        JQS_LOG_FORMAT="text",
        JQS_LOG_LEVEL="warning",
        JQS_AUTH_FAILURE_LIMIT="20",  # the default (the tests' settings raise it for the test client's sake)
    )
    env["DJANGO_SETTINGS_MODULE"] = "zipline_site.settings"
    command = [GUNICORN, "zipline_site.asgi:application", "--config", "python:zipline_site.gunicorn"]
    args = ["--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "4", "--timeout", "120"]
    popen = subprocess.Popen(
        [*command, *args], cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )
    server = Served(port, token, popen, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if server.get("/health", token=None, timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            if popen.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the API did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield server
    finally:
        if popen.poll() is None:
            os.killpg(popen.pid, signal.SIGTERM)
        try:
            popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(popen.pid, signal.SIGKILL)
            popen.wait(timeout=10)


def _pending_job() -> str:
    return str(client.enqueue("process_data", {"data_size": 100, "operation": "sort"}).pk)


def _when(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_a_wait_answers_as_soon_as_the_job_ends(served: Served) -> None:
    gaps = []
    for _ in range(5):
        job_id = _pending_job()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            started = time.monotonic()
            waiting = pool.submit(served.get, f"/api/v1/jobs/{job_id}?wait=30s")
            time.sleep(0.3)  # the request is waiting on the server (nothing to await from here)
            assert not waiting.done(), "answered before the job ended"
            service.cancel(job_id)
            status, headers, body = waiting.result(timeout=30)
            answered = time.time()
        assert status == 200, body
        assert body["status"] == "cancelled" and headers["zipline-wait"] == "ended", (headers, body)
        assert time.monotonic() - started < 10, "the wait ran to its limit instead of ending with the job"
        gaps.append(answered - _when(body["completed_at"]))
    print(f"row's completed_at to the answer received: {[round(g * 1000, 1) for g in gaps]} ms")
    assert sorted(gaps)[len(gaps) // 2] < MEDIAN_LIMIT, gaps
    assert max(gaps) < SLOWEST_LIMIT, gaps


def test_a_wait_answers_when_a_real_worker_finishes_the_job(served: Served, broker: Any, tmp_path: Path) -> None:
    """The recorder's batch is told too: a job run by ``runworkers`` ends the wait as it is recorded."""
    with running(["runworkers", "--processes", "1", "--concurrency", "2"], tmp_path, name="workers") as pool:
        wait_for_workers(broker, 1, proc=pool)
        job_id = str(client.enqueue("test_sleep", {"seconds": 1}).pk)
        started = time.monotonic()
        status, headers, body = served.get(f"/api/v1/jobs/{job_id}?wait=30s")
        answered = time.time()
    assert status == 200 and body["status"] == "completed" and headers["zipline-wait"] == "ended", (headers, body)
    assert time.monotonic() - started < 15, "the wait ran to its limit"
    gap = answered - _when(body["completed_at"])
    print(f"recorded by a worker to the answer received: {gap * 1000:.1f} ms")
    assert gap < SLOWEST_LIMIT, gap


def test_a_wait_answers_at_its_limit_when_the_job_does_not_end(served: Served) -> None:
    job_id = _pending_job()
    started = time.monotonic()
    status, headers, body = served.get(f"/api/v1/jobs/{job_id}?wait=1500ms")
    took = time.monotonic() - started
    assert status == 200 and body["status"] == "pending" and headers["zipline-wait"] == "timeout", (headers, body)
    assert 1.4 <= took < 6.0, f"a wait of 1.5s answered after {took:.2f}s"


def test_a_wait_on_an_ended_job_answers_at_once(served: Served) -> None:
    job_id = _pending_job()
    service.cancel(job_id)
    started = time.monotonic()
    status, headers, body = served.get(f"/api/v1/jobs/{job_id}?wait=30s")
    assert status == 200 and headers["zipline-wait"] == "ended" and body["status"] == "cancelled"
    assert time.monotonic() - started < 5.0


@pytest.mark.parametrize("value", ["soon", "30", "-1s", "61s", "60001ms", "2m", "1m0s", "1h", ""])
def test_a_bad_wait_is_400_naming_wait(served: Served, value: str) -> None:
    job_id = _pending_job()
    status, _, body = served.get(f"/api/v1/jobs/{job_id}?wait={value}")
    assert status == 400, body
    assert "wait" in body["error"]["details"], body


def test_a_wait_without_a_token_is_401(served: Served) -> None:
    job_id = _pending_job()
    status, _, body = served.get(f"/api/v1/jobs/{job_id}?wait=30s", token=None)
    assert status == 401, body


def test_a_wait_on_an_unknown_job_is_404(served: Served) -> None:
    status, _, _ = served.get("/api/v1/jobs/00000000-0000-4000-8000-000000000000?wait=5s")
    assert status == 404


def _threads_and_rss(pid: int) -> tuple[int, int]:
    """The process's thread count and resident memory (KiB), from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return int(fields["Threads"].strip()), int(fields["VmRSS"].split()[0])


def _open_waits(served: Served, job_ids: list[str], wait: str) -> list[socket.socket]:
    socks = []
    for job_id in job_ids:
        sock = socket.create_connection(("127.0.0.1", served.port), timeout=30)
        request = (
            f"GET /api/v1/jobs/{job_id}?wait={wait} HTTP/1.1\r\nHost: localhost\r\n"
            f"Authorization: Bearer {served.token}\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(request.encode())
        socks.append(sock)
    return socks


def _read_all(socks: list[socket.socket], timeout: float) -> list[tuple[float, bytes]]:
    """Each socket's whole answer (the server closes after it) and when it was complete."""
    import selectors

    chosen = selectors.DefaultSelector()
    data: dict[int, bytearray] = {}
    done: dict[int, float] = {}
    for sock in socks:
        sock.setblocking(False)
        chosen.register(sock, selectors.EVENT_READ)
        data[sock.fileno()] = bytearray()
    deadline = time.monotonic() + timeout
    while len(done) < len(socks) and time.monotonic() < deadline:
        for key, _ in chosen.select(timeout=1.0):
            ready = key.fileobj
            assert isinstance(ready, socket.socket)
            chunk = ready.recv(65536)
            if chunk:
                data[ready.fileno()] += chunk
            else:
                done[ready.fileno()] = time.monotonic()
                chosen.unregister(ready)
    answers = [(done.get(s.fileno(), float("inf")), bytes(data[s.fileno()])) for s in socks]
    for sock in socks:
        sock.close()
    return answers


def test_200_concurrent_waiters_cost_connections_not_threads(served: Served) -> None:
    """200 waits at once on one process with 4 API threads: the process's threads stay as they were, its
    memory grows by a small bound, the other requests are answered meanwhile, and all 200 end together
    at their limit (waits that held a thread each would take 50 rounds)."""
    pid = served.worker_pid()
    warm = _pending_job()
    assert served.get(f"/api/v1/jobs/{warm}?wait=10ms")[0] == 200  # the listener and the API threads exist
    threads_before, rss_before = _threads_and_rss(pid)
    job_ids = [_pending_job() for _ in range(200)]
    started = time.monotonic()
    socks = _open_waits(served, job_ids, "4s")
    peak_threads, peak_rss, health = threads_before, rss_before, []
    while time.monotonic() - started < 3.0:
        threads, rss = _threads_and_rss(pid)
        peak_threads, peak_rss = max(peak_threads, threads), max(peak_rss, rss)
        asked = time.monotonic()
        assert served.get("/health", token=None, timeout=5)[0] == 200
        health.append(time.monotonic() - asked)
        time.sleep(0.2)
    answers = _read_all(socks, timeout=30)
    statuses = [body.split(b" ", 2)[1] for _, body in answers if body]
    assert statuses == [b"200"] * 200, f"{len(statuses)} answers: {set(statuses)}"
    assert all(b"zipline-wait: timeout" in body.lower() for _, body in answers)
    last = max(at for at, _ in answers) - started
    grown_kib = peak_rss - rss_before
    print(
        f"200 waiters: threads {threads_before} -> peak {peak_threads}; RSS {rss_before} KiB -> peak {peak_rss} KiB "
        f"(+{grown_kib} KiB, {grown_kib / 200:.1f} KiB a waiter); /health meanwhile {max(health) * 1000:.0f} ms at "
        f"worst; last answer {last:.2f}s after the first request"
    )
    # The event loop's thread, the listener, the 4 API threads (made as requests come) and one spare.
    assert peak_threads <= 1 + 1 + 4 + 1, (threads_before, peak_threads)
    assert grown_kib < 200 * 100, f"memory grew {grown_kib} KiB for 200 waiters"  # under 100 KiB a waiter
    assert max(health) < 3.0, health  # waits holding the 4 threads would hold it 4 s
    assert last < 4.0 + 6.0, f"the last of 200 waits of 4s answered after {last:.1f}s"


def test_a_head_waits_too_and_answers_without_a_body(served: Served) -> None:
    job_id = _pending_job()
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    try:
        started = time.monotonic()
        conn.request("HEAD", f"/api/v1/jobs/{job_id}?wait=300ms", headers={"Authorization": f"Bearer {served.token}"})
        response = conn.getresponse()
        assert response.status == 200 and response.read() == b""
        assert response.getheader("Zipline-Wait") == "timeout"
        assert 0.25 <= time.monotonic() - started < 6.0
    finally:
        conn.close()


def test_the_served_api_counts_failed_logins_by_the_peer_not_x_forwarded_for(served: Served) -> None:
    """Served through uvicorn's worker, ``REMOTE_ADDR`` is still the peer (``zipline_site/asgi_worker.py``):
    a local client that varies ``X-Forwarded-For`` is counted as one address, and is refused at the limit
    (20 failures, the default)."""
    codes = []
    for n in range(21):
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
        try:
            headers = {"Authorization": "Bearer " + "x" * 40, "X-Forwarded-For": f"203.0.113.{n}"}
            conn.request("GET", "/api/v1/stats", headers=headers)
            response = conn.getresponse()
            response.read()
            codes.append(response.status)
            assert response.getheader("Server") is None, "the Server header names the software"
        finally:
            conn.close()
    assert codes == [401] * 20 + [429], codes


def test_a_stopping_server_answers_its_waits_at_once(served: Served) -> None:
    """SIGTERM (a deploy's rolling restart): the waiting request gets its job as it is, at once, and the
    server stops, instead of holding the stop until gunicorn's graceful timeout cuts the connection."""
    job_id = _pending_job()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(served.get, f"/api/v1/jobs/{job_id}?wait=60s")
        time.sleep(0.5)  # the request is waiting on the server (nothing to await from here)
        assert not waiting.done()
        stopped = time.monotonic()
        served.popen.send_signal(signal.SIGTERM)
        status, headers, body = waiting.result(timeout=30)
        answered = time.monotonic() - stopped
    assert status == 200 and body["status"] == "pending" and headers["zipline-wait"] == "timeout", (headers, body)
    assert answered < 5.0, f"answered {answered:.1f}s after SIGTERM"
    assert served.popen.wait(timeout=20) == 0


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def test_a_body_over_every_limit_is_answered_413_without_being_held_in_memory(served: Served) -> None:
    """The ASGI front end reads at most the largest body a view accepts (the batch's 16 MiB): a client that
    declares 200 MB and sends 40 MB gets the API's 413, and the worker process does not grow by the body."""
    worker = served.worker_pid()
    before = _rss_kib(worker)
    sock = socket.create_connection(("127.0.0.1", served.port), timeout=60)
    head = (
        "POST /api/v1/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {served.token}\r\nContent-Length: 200000000\r\n\r\n"
    )
    sock.sendall(head.encode())
    chunk = b" " * (1024 * 1024)
    try:
        for _ in range(40):
            sock.sendall(chunk)
    except OSError:
        pass  # the server answered and closed before reading it all: what is asked
    reply = b""
    try:
        while b"\r\n\r\n" not in reply:
            data = sock.recv(65536)
            if not data:
                break
            reply += data
    finally:
        sock.close()
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    grown = _rss_kib(worker) - before
    assert grown < 30 * 1024, f"the worker grew by {grown} KiB for a 40 MB body"
