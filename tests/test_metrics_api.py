"""The API's metrics under a real gunicorn: off the public port, summed over every worker process.

gunicorn runs with ``--config python:zipline_site.gunicorn`` as in production, two workers, and
``--max-requests`` small enough that the requests of a test are answered by several processes in turn.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import wait_for
from tests.procs import ROOT, free_port, process_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

GUNICORN = Path(sys.executable).parent / "gunicorn"
MAX_REQUESTS = 10


def get(url: str) -> tuple[int, str]:
    """One request; generous timeout: a request may wait for a replaced worker to boot on a busy machine."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def answered_health(api_port: int) -> int:
    """GET /health until it is answered (three tries). A worker replaced under ``--max-requests`` closes the
    connections it accepted but had not read yet: the client sees the connection closed without a response,
    and the request never reached the view (nor its counter), so it is asked again."""
    for attempt in range(3):
        try:
            return get(f"http://127.0.0.1:{api_port}/health")[0]
        except (http.client.RemoteDisconnected, ConnectionResetError):
            if attempt == 2:
                raise
    raise AssertionError("unreachable")  # the loop returns or raises


@contextmanager
def gunicorn(tmp_path: Path, api_port: int, **env: Any) -> Iterator[subprocess.Popen[bytes]]:
    """gunicorn on ``api_port``, ready (its /health answers), killed with its workers after."""
    log = tmp_path / "gunicorn.log"
    args = [str(GUNICORN), "zipline_site.asgi:application", "--config", "python:zipline_site.gunicorn"]
    args += ["--bind", f"127.0.0.1:{api_port}", "--workers", "2", "--max-requests", str(MAX_REQUESTS)]
    with log.open("wb") as out:
        server = subprocess.Popen(
            args, cwd=ROOT, env=process_env(**env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:

        def ready() -> bool:
            if server.poll() is not None:
                raise AssertionError(f"gunicorn exited with {server.returncode}:\n{log.read_text()[-3000:]}")
            try:
                return get(f"http://127.0.0.1:{api_port}/health")[0] == 200
            except OSError:
                return False

        wait_for(ready, 30, interval=0.1, message="gunicorn to answer /health")
        yield server
    finally:
        try:
            os.killpg(server.pid, 9)
        except ProcessLookupError:
            pass
        server.wait(timeout=10)


def health_answers(metrics_url: str) -> float:
    """GET /health answers counted by django-prometheus, summed over every label set of one scrape."""
    status, body = get(metrics_url)
    assert status == 200, body
    return sum(
        sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name == "django_http_responses_total_by_status_view_method_total"
        and sample.labels.get("view") == "health"
        and sample.labels.get("method") == "GET"
    )


def writers(files: Path) -> set[str]:
    """The processes that wrote a counter (one file each, named after its pid)."""
    return {path.stem.rsplit("_", 1)[1] for path in files.glob("counter_*.db")}


def test_a_scrape_sums_every_api_process_and_the_public_port_has_no_metrics(tmp_path: Path) -> None:
    api_port, metrics_port = free_port(), free_port()
    files = tmp_path / "prometheus"
    files.mkdir()
    env = {
        "JQS_METRICS_ENABLED": "true",
        "JQS_METRICS_HOST": "127.0.0.1",
        "JQS_METRICS_API_PORT": metrics_port,
        "PROMETHEUS_MULTIPROC_DIR": files,
    }
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    with gunicorn(tmp_path, api_port, **env):
        assert get(f"http://127.0.0.1:{api_port}/metrics")[0] == 404
        before = health_answers(metrics_url)
        # A worker is replaced after about MAX_REQUESTS (uvicorn's worker checks its count every 0.1 s, so
        # a fast client may get a few more from it): ask until a third process has answered, within a bound.
        requests = 0
        while len(writers(files)) < 3 and requests < 50 * MAX_REQUESTS:
            assert answered_health(api_port) == 200
            requests += 1
        scrapes = [health_answers(metrics_url) for _ in range(3)]
    assert len(writers(files)) >= 3, f"{requests} requests were answered by {len(writers(files))} processes"
    assert scrapes == [before + requests] * 3


def test_metrics_off_means_nothing_listens_for_the_api_either(tmp_path: Path) -> None:
    api_port, metrics_port = free_port(), free_port()
    env = {"JQS_METRICS_ENABLED": "false", "JQS_METRICS_HOST": "127.0.0.1", "JQS_METRICS_API_PORT": metrics_port}
    with gunicorn(tmp_path, api_port, **env):
        assert get(f"http://127.0.0.1:{api_port}/metrics")[0] == 404
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", metrics_port), timeout=2):
            pass


def test_a_taken_api_metrics_port_is_one_line_and_the_api_serves_on(tmp_path: Path) -> None:
    api_port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"JQS_METRICS_ENABLED": "true", "JQS_METRICS_HOST": "127.0.0.1", "JQS_METRICS_API_PORT": port}
        with gunicorn(tmp_path, api_port, **env) as server:
            assert get(f"http://127.0.0.1:{api_port}/health")[0] == 200
            assert server.poll() is None
    log = (tmp_path / "gunicorn.log").read_text()
    lines = [line for line in log.splitlines() if f":{port}" in line]
    assert len(lines) == 1 and lines[0].endswith(
        f"API metrics: 127.0.0.1:{port} is taken; serving no metrics here, carrying on"
        " (give this one its own JQS_METRICS_API_PORT)"
    ), log
    assert "Traceback" not in log


def test_a_bad_metrics_setting_stops_gunicorn_with_one_line(tmp_path: Path) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [str(GUNICORN), "zipline_site.asgi:application", "--config", "python:zipline_site.gunicorn"],
        cwd=ROOT,
        env=process_env(JQS_METRICS_API_PORT="99999"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        "zipline: configuration error: JQS_METRICS_API_PORT='99999': expected a whole number from 1 to 65535"
    )
    assert time.monotonic() - started < 30


def test_the_public_url_map_has_no_metrics_and_opens_only_the_documented_endpoints(broker: object) -> None:
    """docs/operations.md's table of endpoints without authentication, as an anonymous caller sees them."""
    anonymous = Client()
    assert anonymous.get("/metrics").status_code == 404
    for path in ("/health", "/api/schema/", "/api/docs/", "/api/redoc/"):
        assert anonymous.get(path).status_code == 200, path
    assert anonymous.get("/api/v1/jobs").status_code == 401


def test_kubernetes_scrapes_the_api_metrics_port_which_its_service_does_not_expose() -> None:
    documents = [
        doc for doc in yaml.safe_load_all((ROOT / "deploy/k8s/api-deployment.yaml").read_text(encoding="utf-8")) if doc
    ]
    [deployment] = [doc for doc in documents if doc["kind"] == "Deployment"]
    [service] = [doc for doc in documents if doc["kind"] == "Service"]
    template = deployment["spec"]["template"]
    assert template["metadata"]["annotations"]["prometheus.io/port"] == "9092"
    [container] = template["spec"]["containers"]
    assert {"name": "metrics", "containerPort": 9092, "protocol": "TCP"} in container["ports"]
    assert [port["port"] for port in service["spec"]["ports"]] == [8080]
