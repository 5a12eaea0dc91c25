"""Issue 19, item 12: ``JQS_WEBHOOK_ALLOWED_NETWORKS`` entries may name a port, checked on every redirect.

The attack: allowing ``127.0.0.1/32`` for one service opened every port on that host, through
redirects too. Real HTTP servers on the loopback interface; nothing leaves it.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer

import pytest

from jobs.processors.webhook import refusal_reason
from jobs.registry import PermanentError
from tests.test_processor_webhook import Handler, allow, run
from zipline_site.allowlist import AllowedNetwork, parse_entry
from zipline_site.config import ConfigError, load_config


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def _serve(host: str, server_class: type[ThreadingHTTPServer]) -> tuple[ThreadingHTTPServer, int]:
    httpd = server_class((host, 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return httpd, int(httpd.server_address[1])


@pytest.fixture
def servers() -> Iterator[Callable[[str], int]]:
    """Start HTTP servers on demand (``start("127.0.0.1")`` gives its port); all stopped after."""
    started: list[ThreadingHTTPServer] = []

    def start(host: str) -> int:
        httpd, port = _serve(host, _IPv6Server if ":" in host else ThreadingHTTPServer)
        started.append(httpd)
        return port

    yield start
    for httpd in started:
        httpd.shutdown()
        httpd.server_close()


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_an_entry_with_a_port_admits_that_port_only(servers: Callable[[str], int]) -> None:
    allowed, other = servers("127.0.0.1"), servers("127.0.0.1")
    with allow(f"127.0.0.1:{allowed}"):
        assert run({"url": f"http://127.0.0.1:{allowed}/echo", "method": "GET"})["status_code"] == 200
        with pytest.raises(PermanentError, match=f"127.0.0.1:{other} refused: 127.0.0.1 is a loopback"):
            run({"url": f"http://127.0.0.1:{other}/echo", "method": "GET"})


def test_a_redirect_to_another_port_of_an_allowed_host_is_refused(servers: Callable[[str], int]) -> None:
    allowed, other = servers("127.0.0.1"), servers("127.0.0.1")
    with allow(f"127.0.0.1:{allowed}"):
        same_port = run({"url": f"http://127.0.0.1:{allowed}/redirect?to=/echo", "method": "GET"})
        assert same_port["status_code"] == 200
        with pytest.raises(PermanentError, match=f"127.0.0.1:{other} refused"):
            run({"url": f"http://127.0.0.1:{allowed}/redirect?to=http://127.0.0.1:{other}/echo", "method": "GET"})


def test_a_network_with_a_port(servers: Callable[[str], int]) -> None:
    allowed, other = servers("127.0.0.1"), servers("127.0.0.1")
    with allow(f"127.0.0.0/8:{allowed}"):
        assert run({"url": f"http://127.0.0.1:{allowed}/echo", "method": "GET"})["status_code"] == 200
        with pytest.raises(PermanentError, match="refused"):
            run({"url": f"http://127.0.0.1:{other}/echo", "method": "GET"})


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_an_ipv6_address_with_a_port(servers: Callable[[str], int]) -> None:
    allowed, other = servers("::1"), servers("::1")
    with allow(f"[::1]:{allowed}"):
        assert run({"url": f"http://[::1]:{allowed}/echo", "method": "GET"})["status_code"] == 200
        with pytest.raises(PermanentError, match="::1 is a loopback"):
            run({"url": f"http://[::1]:{other}/echo", "method": "GET"})


def test_a_bare_address_opens_every_port_of_it(servers: Callable[[str], int]) -> None:
    first, second = servers("127.0.0.1"), servers("127.0.0.1")
    with allow("127.0.0.1"):
        for port in (first, second):
            assert run({"url": f"http://127.0.0.1:{port}/echo", "method": "GET"})["status_code"] == 200


def test_entries_are_parsed_and_checked_by_the_configuration() -> None:
    assert parse_entry("10.0.0.5:8443") == AllowedNetwork(parse_entry("10.0.0.5/32").network, 8443)
    assert parse_entry("[::1]:8443").port == 8443 and parse_entry("[fd00::/8]:443").network.prefixlen == 8
    assert parse_entry("fd00::/8").port is None and parse_entry("[::1]").port is None
    config = load_config({"JQS_WEBHOOK_ALLOWED_NETWORKS": "10.0.0.5:8443, [::1]:9000, 192.168.0.0/16"})
    assert config.webhook.allowed_networks == ("10.0.0.5:8443", "[::1]:9000", "192.168.0.0/16")
    for bad, words in [
        ("10.0.0.5:0", "port 0 is not from 1 to 65535"),
        ("10.0.0.5:70000", "port 70000 is not from 1 to 65535"),
        ("[::1:8443", "is not a CIDR network"),
        ("10.0.0.5:", "is not a CIDR network"),
        ("fd00::/8:443", "is not a CIDR network"),
    ]:
        with pytest.raises(ConfigError, match=rf"JQS_WEBHOOK_ALLOWED_NETWORKS='{re.escape(bad)}'.*{words}"):
            load_config({"JQS_WEBHOOK_ALLOWED_NETWORKS": bad})


def test_the_pure_check_takes_the_port() -> None:
    assert refusal_reason("10.0.0.5", ["10.0.0.5:8443"], 8443) is None
    assert refusal_reason("10.0.0.5", ["10.0.0.5:8443"], 8444) is not None
    assert refusal_reason("10.0.0.5", ["10.0.0.5:8443"]) is not None  # no port known: not admitted
    assert refusal_reason("::ffff:10.0.0.5", ["10.0.0.0/8:8443"], 8443) is None
    assert refusal_reason("10.0.0.5", ["10.0.0.5"], 1) is None


def test_a_url_without_a_port_is_judged_on_its_scheme_s_port() -> None:
    from jobs.processors import webhook

    http, https = webhook._parse_url("http://127.0.0.1/", "url"), webhook._parse_url("https://127.0.0.1/", "url")
    assert webhook._allowed_addresses(http, ("127.0.0.1:80",)) and webhook._allowed_addresses(https, ("127.0.0.1:443",))
    with pytest.raises(PermanentError, match="refused"):
        webhook._allowed_addresses(http, ("127.0.0.1:443",))
