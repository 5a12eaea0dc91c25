"""The webhook processor against a real HTTP server on 127.0.0.1, and its SSRF address check.

No traffic leaves the loopback interface: non-loopback addresses are only given to the pure check.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.test import override_settings

from jobs.processors import webhook
from jobs.processors.webhook import WebhookError, WebhookProcessor, refusal_reason
from jobs.registry import Context, JobCancelled, PermanentError, registry


def make_ctx(seconds: float = 30.0) -> Context:
    return Context(
        job_id="x",
        attempt=1,
        deadline=time.monotonic() + seconds,
    )


def run(payload: Any, ctx: Context | None = None) -> dict[str, Any]:
    job: Any = SimpleNamespace(payload=payload)  # the processor reads only .payload
    return WebhookProcessor().process(job, ctx or make_ctx())


def allow(*networks: str) -> Any:
    config = dataclasses.replace(
        settings.ZIPLINE, values={**settings.ZIPLINE.values, "webhook_allowed_networks": tuple(networks)}
    )
    return override_settings(ZIPLINE=config)


class Handler(BaseHTTPRequestHandler):
    """Routes: /echo (the request as JSON), /status?code=N, /slow?seconds=S, /big?chars=N&char=C,
    /redirect?code=N&to=URL, /loop (redirects to itself)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if parts.path == "/echo":
            echo = {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8"),
            }
            self._answer(200, json.dumps(echo).encode(), {"Content-Type": "application/json"})
        elif parts.path == "/status":
            self._answer(int(query["code"]), b"something broke")
        elif parts.path == "/slow":
            time.sleep(float(query["seconds"]))
            self._answer(200, b"late")
        elif parts.path == "/big":
            text = query.get("char", "a") * int(query["chars"])
            self._answer(200, text.encode("utf-8"), {"Content-Type": "text/plain; charset=utf-8"})
        elif parts.path == "/loop":
            self._answer(302, b"", {"Location": "/loop"})
        elif parts.path == "/redirect":
            self._answer(int(query.get("code", "302")), b"", {"Location": query["to"]})
        else:
            self._answer(404, b"not found")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle  # noqa: N815 (http.server hook names)


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


# --- requests that succeed -----------------------------------------------------------------------


def test_post_sends_json_and_returns_the_answer(server: str) -> None:
    with allow("127.0.0.0/8"):
        result = run({"url": f"{server}/echo?x=1", "data": {"a": 1, "b": [1, 2]}, "headers": {"X-Token": "t0k"}})
    assert result["status_code"] == 200
    assert result["truncated"] is False
    echo = json.loads(result["body"])
    assert echo["method"] == "POST"
    assert echo["path"] == "/echo?x=1"
    assert json.loads(echo["body"]) == {"a": 1, "b": [1, 2]}
    assert echo["headers"]["content-type"] == "application/json"
    assert echo["headers"]["x-token"] == "t0k"
    assert echo["headers"]["host"] == server.removeprefix("http://")


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE", "put"])
def test_every_method(server: str, method: str) -> None:
    with allow("127.0.0.0/8"):
        result = run({"url": f"{server}/echo", "method": method})
    assert json.loads(result["body"])["method"] == method.upper()


def test_long_body_is_truncated_to_4096_characters(server: str) -> None:
    with allow("127.0.0.0/8"):
        result = run({"url": f"{server}/big?chars=10000", "method": "GET"})
        multibyte = run({"url": f"{server}/big?chars=5000&char=%C3%A9", "method": "GET"})
        exact = run({"url": f"{server}/big?chars=4096", "method": "GET"})
    assert result == {"status_code": 200, "body": "a" * 4096, "truncated": True}
    assert multibyte == {"status_code": 200, "body": "é" * 4096, "truncated": True}
    assert exact == {"status_code": 200, "body": "a" * 4096, "truncated": False}


def test_host_name_is_resolved_once_and_sent_as_host(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The connection goes to the checked address while Host still names the URL's host."""
    port = int(server.rsplit(":", 1)[1])
    real = socket.getaddrinfo
    asked: list[str] = []

    def fake(host: str, *args: Any, **kwargs: Any) -> Any:
        asked.append(host)
        if host == "hooks.example.invalid":
            # a refused answer first: the processor must skip it and connect to the allowed one
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.2", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
            ]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(webhook.socket, "getaddrinfo", fake)
    with allow("127.0.0.1/32"):
        result = run({"url": f"http://hooks.example.invalid:{port}/echo"})
    assert json.loads(result["body"])["headers"]["host"] == f"hooks.example.invalid:{port}"
    assert asked == ["hooks.example.invalid"]


def _resolve_to_loopback(monkeypatch: pytest.MonkeyPatch, name: str, port: int) -> None:
    real = socket.getaddrinfo

    def fake(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == name:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(webhook.socket, "getaddrinfo", fake)


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, str]]:
    """An HTTPS server on 127.0.0.1 whose self-signed certificate names hooks.example.invalid."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key), "-out", str(cert)]
        + ["-subj", "/CN=hooks.example.invalid", "-addext", "subjectAltName=DNS:hooks.example.invalid"],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield int(httpd.server_address[1]), str(cert)
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_https_verifies_the_certificate_for_the_url_host(
    tls_server: tuple[int, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The socket goes to the checked IP, while SNI and the certificate check use the URL's host name."""
    port, cert = tls_server
    _resolve_to_loopback(monkeypatch, "hooks.example.invalid", port)
    with allow("127.0.0.0/8"), pytest.raises(WebhookError, match="CERTIFICATE_VERIFY_FAILED"):
        run({"url": f"https://hooks.example.invalid:{port}/echo"})
    monkeypatch.setattr(webhook, "_tls_context", lambda: ssl.create_default_context(cafile=cert))
    with allow("127.0.0.0/8"):
        result = run({"url": f"https://hooks.example.invalid:{port}/echo"})
        with pytest.raises(WebhookError, match="CERTIFICATE_VERIFY_FAILED"):
            run({"url": f"https://127.0.0.1:{port}/echo"})
    assert json.loads(result["body"])["headers"]["host"] == f"hooks.example.invalid:{port}"


# --- failures that may be retried ----------------------------------------------------------------


@pytest.mark.parametrize("code", [500, 503, 404, 400, 304])
def test_non_2xx_answer_fails_the_attempt(server: str, code: int) -> None:
    with allow("127.0.0.0/8"), pytest.raises(WebhookError, match=str(code)) as info:
        run({"url": f"{server}/status?code={code}"})
    assert not isinstance(info.value, PermanentError)


def test_connection_refused_fails_the_attempt() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with allow("127.0.0.0/8"), pytest.raises(WebhookError, match="ConnectionRefused"):
        run({"url": f"http://127.0.0.1:{port}/"})


def test_payload_timeout_is_honoured(server: str) -> None:
    started = time.monotonic()
    with allow("127.0.0.0/8"), pytest.raises(WebhookError, match="timed out"):
        run({"url": f"{server}/slow?seconds=3", "timeout": "300ms"})
    assert time.monotonic() - started < 2


def test_numeric_timeout_is_seconds(server: str) -> None:
    started = time.monotonic()
    with allow("127.0.0.0/8"), pytest.raises(WebhookError, match="timed out"):
        run({"url": f"{server}/slow?seconds=3", "timeout": 0.3})
    assert time.monotonic() - started < 2


def test_timeout_is_capped_by_the_job_deadline(server: str) -> None:
    started = time.monotonic()
    with allow("127.0.0.0/8"), pytest.raises(WebhookError, match="timed out"):
        run({"url": f"{server}/slow?seconds=3", "timeout": "10s"}, make_ctx(0.3))
    assert time.monotonic() - started < 2


def test_slow_answer_within_timeout_succeeds(server: str) -> None:
    with allow("127.0.0.0/8"):
        result = run({"url": f"{server}/slow?seconds=0.2", "timeout": "5s"})
    assert result["body"] == "late"


def test_cancelled_job_stops(server: str) -> None:
    ctx = make_ctx()
    ctx.cancel("stop")
    with allow("127.0.0.0/8"), pytest.raises(JobCancelled):
        run({"url": f"{server}/echo"}, ctx)


# --- SSRF protection -----------------------------------------------------------------------------


def test_loopback_is_refused_unless_allowed(server: str) -> None:
    with allow(), pytest.raises(PermanentError) as info:
        run({"url": f"{server}/echo"})
    message = str(info.value)
    assert "refused" in message
    assert "127.0.0.1 is a loopback address" in message
    assert "JQS_WEBHOOK_ALLOWED_NETWORKS" in message


def test_localhost_name_is_refused() -> None:
    with allow(), pytest.raises(PermanentError, match="loopback"):
        run({"url": "http://localhost:9/"})


def test_redirect_is_followed_when_allowed(server: str) -> None:
    with allow("127.0.0.0/8"):
        result = run({"url": f"{server}/redirect?code=302&to=/echo?after=1", "method": "GET"})
    echo = json.loads(result["body"])
    assert result["status_code"] == 200
    assert echo["path"] == "/echo?after=1"


def test_303_turns_post_into_get_and_307_keeps_it(server: str) -> None:
    with allow("127.0.0.0/8"):
        after_303 = json.loads(run({"url": f"{server}/redirect?code=303&to=/echo", "data": {"a": 1}})["body"])
        after_307 = json.loads(run({"url": f"{server}/redirect?code=307&to=/echo", "data": {"a": 1}})["body"])
    assert after_303["method"] == "GET" and after_303["body"] == ""
    assert after_307["method"] == "POST" and json.loads(after_307["body"]) == {"a": 1}


def test_redirect_to_a_refused_address_is_refused(server: str) -> None:
    port = server.rsplit(":", 1)[1]
    with allow("127.0.0.1/32"), pytest.raises(PermanentError) as info:
        run({"url": f"{server}/redirect?code=302&to=http://127.0.0.2:{port}/echo"})
    assert "127.0.0.2 is a loopback address" in str(info.value)


def test_redirect_to_another_scheme_is_refused(server: str) -> None:
    with allow("127.0.0.0/8"), pytest.raises(PermanentError, match="scheme 'file'"):
        run({"url": f"{server}/redirect?to=file:///etc/passwd"})


def test_too_many_redirects(server: str) -> None:
    with allow("127.0.0.0/8"), pytest.raises(WebhookError, match="more than 5 redirects"):
        run({"url": f"{server}/loop"})


def test_credentials_are_dropped_on_a_redirect_to_another_origin(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    port = int(server.rsplit(":", 1)[1])
    _resolve_to_loopback(monkeypatch, "other.example.invalid", port)
    target = f"http://other.example.invalid:{port}/echo"
    with allow("127.0.0.0/8"):
        result = run({"url": f"{server}/redirect?to={target}", "headers": {"Authorization": "Bearer s", "X-A": "b"}})
    headers = json.loads(result["body"])["headers"]
    assert "authorization" not in headers
    assert headers["x-a"] == "b"


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("127.0.0.1", "is a loopback address"),
        ("10.0.0.1", "is a private address"),
        ("192.168.1.10", "is a private address"),
        ("172.16.0.1", "is a private address"),
        ("169.254.169.254", "is a link-local address"),
        ("0.0.0.0", "is an unspecified address"),
        ("224.0.0.1", "is a multicast address"),
        ("240.0.0.1", "address"),
        ("100.64.0.1", "is a non-global address"),
        ("::1", "is a loopback address"),
        ("::", "is an unspecified address"),
        ("fe80::1", "is a link-local address"),
        ("fc00::1", "is a private address"),
        ("ff02::1", "is a multicast address"),
        ("::ffff:127.0.0.1", "is a loopback address"),
        ("::ffff:10.0.0.1", "is a private address"),
        ("::ffff:169.254.169.254", "is a link-local address"),
        ("64:ff9b::a9fe:a9fe", "address"),
        ("2002:7f00:1::", "address"),
    ],
)
def test_non_global_addresses_are_refused(address: str, words: str) -> None:
    reason = refusal_reason(address)
    assert reason is not None
    assert reason.startswith(address)
    assert words in reason


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_global_addresses_pass(address: str) -> None:
    assert refusal_reason(address) is None


def test_allowed_networks_let_addresses_through() -> None:
    assert refusal_reason("10.0.0.1", ["10.0.0.0/8"]) is None
    assert refusal_reason("::ffff:10.0.0.1", ["10.0.0.0/8"]) is None
    assert refusal_reason("::1", ["::1/128"]) is None
    assert refusal_reason("10.0.0.1", ["192.168.0.0/16", "::/0"]) is not None
    assert refusal_reason("169.254.169.254", ["10.0.0.0/8"]) is not None


# --- payload validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ("not an object", "payload"),
        ({}, "url"),
        ({"url": 5}, "url"),
        ({"url": "ftp://127.0.0.1/x"}, "url"),
        ({"url": "file:///etc/passwd"}, "url"),
        ({"url": "http:///nohost"}, "url"),
        ({"url": "http://127.0.0.1:99999/"}, "url"),
        ({"url": "http://user:pw@127.0.0.1/"}, "url"),
        ({"url": "http://127.0.0.1/a b"}, "url"),
        ({"url": "http://127.0.0.1/", "method": "TRACE"}, "method"),
        ({"url": "http://127.0.0.1/", "method": 1}, "method"),
        ({"url": "http://127.0.0.1/", "headers": ["X-A"]}, "headers"),
        ({"url": "http://127.0.0.1/", "headers": {"X-A": 1}}, "headers"),
        ({"url": "http://127.0.0.1/", "headers": {"Bad Name": "x"}}, "headers"),
        ({"url": "http://127.0.0.1/", "headers": {"X-A": "a\r\nX-B: b"}}, "headers"),
        ({"url": "http://127.0.0.1/", "headers": {"Host": "evil"}}, "headers"),
        ({"url": "http://127.0.0.1/", "timeout": "soon"}, "timeout"),
        ({"url": "http://127.0.0.1/", "timeout": -1}, "timeout"),
        ({"url": "http://127.0.0.1/", "timeout": 0}, "timeout"),
        ({"url": "http://127.0.0.1/", "timeout": True}, "timeout"),
        ({"url": "http://127.0.0.1/", "timeout": [1]}, "timeout"),
        ({"url": "http://127.0.0.1/", "data": {1, 2}}, "data"),
        ({"url": "http://127.0.0.1/", "data": float("nan")}, "data"),
    ],
)
def test_bad_payload_is_a_permanent_error_naming_the_field(payload: Any, field: str) -> None:
    with pytest.raises(PermanentError) as info:
        run(payload)
    assert str(info.value).startswith(f"{field}:")


def test_registered_under_webhook() -> None:
    processor = registry.get("webhook")
    assert isinstance(processor, WebhookProcessor)
    assert processor.can_process("webhook") and not processor.can_process("send_email")
