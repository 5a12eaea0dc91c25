"""Issue 19's SSRF probes, kept: 31 URL forms that lead to a loopback server, asked directly and
through a redirect from an allowed server, plus DNS answers that change between check and use.

Every probe must be refused (or fail to resolve) and the victim server must see no request at all:
that, not the error's wording, is what a bypass would break.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

import pytest

from jobs.processors import webhook
from jobs.processors.webhook import WebhookError
from jobs.registry import PermanentError
from tests.test_processor_webhook import Handler, allow, run

#: ``{p}`` is the victim's port. Each form names 127.0.0.1, or an address that reaches it, another way.
URL_FORMS = [
    "http://127.0.0.1:{p}/",
    "HTTP://127.0.0.1:{p}/",
    "http://127.0.0.1.:{p}/",
    "http://localhost:{p}/",
    "http://LOCALHOST:{p}/",
    "http://localhost.:{p}/",
    "http://127.1:{p}/",
    "http://127.000.000.001:{p}/",
    "http://2130706433:{p}/",
    "http://0x7f000001:{p}/",
    "http://0x7f.0.0.1:{p}/",
    "http://0177.0.0.1:{p}/",
    "http://0:{p}/",
    "http://0.0.0.0:{p}/",
    "http://127\u30020\u30020\u30021:{p}/",
    "http://[::]:{p}/",
    "http://[::1]:{p}/",
    "http://[0:0:0:0:0:0:0:1]:{p}/",
    "http://[::ffff:127.0.0.1]:{p}/",
    "http://[::ffff:7f00:1]:{p}/",
    "http://[0:0:0:0:0:ffff:127.0.0.1]:{p}/",
    "http://[::ffff:0.0.0.0]:{p}/",
    "http://[::127.0.0.1]:{p}/",
    "http://[64:ff9b::127.0.0.1]:{p}/",
    "http://[2002:7f00:1::]:{p}/",
    "http://[::1%25lo]:{p}/",
    "http://[fe80::1%25lo]:{p}/",
    "http://evil.example@127.0.0.1:{p}/",
    "http://127.0.0.1:{p}#@evil.example/",
    "http://127.0.0.1:{p}\\@evil.example/",
    "http://169.254.169.254:{p}/latest/meta-data/",
]


class _Victim(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's hook name)
        self.server.hits += 1  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", "6")
        self.end_headers()
        self.wfile.write(b"pwned!")


def _serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    httpd.hits = 0  # type: ignore[attr-defined]
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return httpd


@pytest.fixture(scope="module")
def victim() -> Iterator[ThreadingHTTPServer]:
    httpd = _serve(_Victim)
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def front() -> Iterator[int]:
    """An allowed server that redirects wherever ``/redirect?to=`` says."""
    httpd = _serve(Handler)
    yield int(httpd.server_address[1])
    httpd.shutdown()
    httpd.server_close()


def _refused(url: str, victim: ThreadingHTTPServer) -> None:
    before = victim.hits  # type: ignore[attr-defined]
    with pytest.raises((PermanentError, WebhookError)):
        run({"url": url, "method": "GET", "timeout": "2s"})
    assert victim.hits == before, f"{url} reached the victim"  # type: ignore[attr-defined]


def test_31_forms() -> None:
    assert len(URL_FORMS) == 31 and len(set(URL_FORMS)) == 31


@pytest.mark.parametrize("form", URL_FORMS)
def test_each_form_is_refused(form: str, victim: ThreadingHTTPServer) -> None:
    with allow():
        _refused(form.format(p=victim.server_address[1]), victim)


@pytest.mark.parametrize("form", URL_FORMS)
def test_each_form_is_refused_after_a_redirect(form: str, victim: ThreadingHTTPServer, front: int) -> None:
    location = quote(form.format(p=victim.server_address[1]), safe="/:[]@%\\#")  # a header is ASCII
    with allow(f"127.0.0.1:{front}"):
        _refused(f"http://127.0.0.1:{front}/redirect?code=302&to={quote(location, safe='')}", victim)


def test_a_name_that_resolves_to_loopback_is_refused(
    victim: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = int(victim.server_address[1])
    real = socket.getaddrinfo

    def resolve(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.example.invalid":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(webhook.socket, "getaddrinfo", resolve)
    with allow():
        _refused(f"http://rebind.example.invalid:{port}/", victim)


def test_dns_is_asked_once_per_hop_and_the_answer_checked_is_the_one_connected_to(
    victim: ThreadingHTTPServer, front: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the first answer is allowed, a second would be the victim. There is no second."""
    port = int(victim.server_address[1])
    real = socket.getaddrinfo
    answers = iter([("127.0.0.1", front), ("127.0.0.1", port)])
    asked: list[str] = []

    def rebinding(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.example.invalid":
            asked.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", next(answers))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(webhook.socket, "getaddrinfo", rebinding)
    with allow(f"127.0.0.1:{front}"):
        result = run({"url": f"http://rebind.example.invalid:{front}/echo", "method": "GET"})
    assert result["status_code"] == 200 and asked == ["rebind.example.invalid"]
    assert victim.hits == 0  # type: ignore[attr-defined]
