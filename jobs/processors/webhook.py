"""The ``webhook`` job: one HTTP request to a URL the job names, made with the standard library only.

Because the URL comes from whoever submits jobs, every destination is checked against SSRF: the host is
resolved here, each address is judged (loopback, private, link-local, multicast, reserved, unspecified
or otherwise not global is refused unless ``JQS_WEBHOOK_ALLOWED_NETWORKS`` admits it on the URL's port),
and the socket is connected to exactly the address that passed, so DNS cannot answer differently
between check and use.
Redirects are followed by hand, up to :data:`MAX_REDIRECTS`, and every hop is checked again.
"""

from __future__ import annotations

import codecs
import http.client
import json
import math
import re
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urljoin, urlsplit

from django.conf import settings

from jobs.processors.ssrf import refusal_reason as refusal_reason  # the tests import it from here too
from jobs.registry import Context, PayloadError, PermanentError, RetryDefaults
from zipline_site.durations import DurationError, parse_duration

if TYPE_CHECKING:
    from jobs.models import Job

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
DEFAULT_TIMEOUT = 10.0
BODY_CHARS = 4096
MAX_URL_LENGTH = 8192
USER_AGENT = "ZipLine-webhook/1"

# The first BODY_CHARS characters of any text fit in this many bytes (4 bytes per character at most).
_BODY_BYTES = BODY_CHARS * 4
_READ_CHUNK = 8192
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an RFC 9110 token, as a whole (fullmatch)
# Framing headers are http.client's to write; a Host of the job's choosing would bypass the URL it names.
_RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
# Sent only to the origin the job named: dropped when a redirect leads elsewhere.
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
_SAFE_URL_CHARS = "/?&=:@!$'()*+,;%-._~[]"


class WebhookError(Exception):
    """A failed attempt a retry may fix: a non-2xx answer, a network error or a timeout."""


# --- URLs and connections ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """One request's destination, parsed from a URL."""

    scheme: str
    host: str
    port: int
    path: str

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def _parse_url(url: Any, field: str) -> _Target:
    """Parse and check a URL; a bad one raises :class:`PayloadError` naming ``field``."""
    if not isinstance(url, str) or not url.strip():
        raise PayloadError(field, "expected an http:// or https:// URL")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise PayloadError(field, f"longer than {MAX_URL_LENGTH} characters")
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise PayloadError(field, "contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise PayloadError(field, f"not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise PayloadError(field, f"scheme {parts.scheme or '(none)'!r} is not allowed; use http or https")
    if parts.username is not None or parts.password is not None:
        raise PayloadError(field, "credentials in the URL are not supported; send an Authorization header")
    host = parts.hostname
    if not host:
        raise PayloadError(field, "the URL names no host")
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise PayloadError(field, f"{host!r} is not a valid host name") from None
    path = quote(parts.path or "/", safe=_SAFE_URL_CHARS)
    if parts.query:
        path += "?" + quote(parts.query, safe=_SAFE_URL_CHARS)
    return _Target(scheme, host, port or (443 if scheme == "https" else 80), path)


_Address = tuple[socket.AddressFamily, tuple[Any, ...]]


def _allowed_addresses(target: _Target, allowed_networks: tuple[str, ...]) -> list[_Address]:
    """Resolve the target's host and keep the addresses it may connect to; none raises PermanentError."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise WebhookError(f"webhook destination {target.origin}: cannot resolve {target.host!r}: {exc}") from exc
    allowed: list[_Address] = []
    refusal = None
    for family, _type, _proto, _name, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        reason = refusal_reason(str(sockaddr[0]), allowed_networks, target.port)
        if reason is None:
            allowed.append((family, sockaddr))
        elif refusal is None:
            refusal = reason
    if not allowed:
        raise PermanentError(
            f"webhook destination {target.origin} refused: {refusal or 'no IPv4 or IPv6 address'}; "
            "allow it with JQS_WEBHOOK_ALLOWED_NETWORKS"
        )
    return allowed


def _connect(addresses: list[_Address], timeout: float) -> socket.socket:
    """A TCP socket connected to the first reachable address of those checked: never one resolved anew."""
    error: OSError | None = None
    for family, sockaddr in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error or OSError("no address to connect to")


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to a checked address; the Host header still names the URL's host."""

    def __init__(self, host: str, port: int, addresses: list[_Address], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._addresses = addresses

    def connect(self) -> None:
        self.sock = _connect(self._addresses, float(self.timeout or DEFAULT_TIMEOUT))


def _tls_context() -> ssl.SSLContext:
    """The system's trusted CAs with hostname checks: the stdlib defaults, kept in one place for tests."""
    return ssl.create_default_context()


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """An HTTPS connection to a checked address; SNI and certificate checks use the URL's host."""

    def __init__(self, host: str, port: int, addresses: list[_Address], timeout: float) -> None:
        self._tls = _tls_context()
        super().__init__(host, port, timeout=timeout, context=self._tls)
        self._addresses = addresses

    def connect(self) -> None:
        sock = _connect(self._addresses, float(self.timeout or DEFAULT_TIMEOUT))
        try:
            self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


# --- the payload ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookRequest:
    """A validated ``webhook`` payload."""

    url: str
    method: str
    body: bytes | None
    headers: dict[str, str]
    timeout: float


def _timeout(value: Any) -> float:
    if value is None:
        return DEFAULT_TIMEOUT
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise PayloadError("timeout", "expected seconds or a duration such as 5s or 500ms")
    try:
        seconds = parse_duration(value)
    except DurationError as exc:
        raise PayloadError("timeout", str(exc)) from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise PayloadError("timeout", f"expected a duration above zero, not {value!r}")
    return seconds


def _headers(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PayloadError("headers", "expected an object of header names to string values")
    headers: dict[str, str] = {}
    for name, text in value.items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise PayloadError("headers", f"{name!r} is not a valid header name")
        if name.lower() in _RESERVED_HEADERS:
            raise PayloadError("headers", f"{name} is set by ZipLine and cannot be given")
        if not isinstance(text, str):
            raise PayloadError("headers", f"the value of {name} must be a string, not {text!r}")
        if any(c in text for c in "\r\n\0"):
            raise PayloadError("headers", f"the value of {name} contains a line break")
        headers[name] = text
    return headers


def parse_payload(payload: Any) -> WebhookRequest:
    """Validate a ``webhook`` payload; a bad one raises :class:`PayloadError` naming the field.

    Run at submit (``validate_payload``: no DNS lookup, the destination is judged when sent) and again
    when the job runs.
    """
    if not isinstance(payload, Mapping):
        raise PayloadError("", "expected an object with url, method, data, headers and timeout")
    _parse_url(payload.get("url"), "url")
    url = str(payload["url"]).strip()
    method = payload.get("method", "POST")
    if method is None:
        method = "POST"
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise PayloadError("method", f"expected one of {', '.join(METHODS)}, not {method!r}")
    headers = _headers(payload.get("headers"))
    body = None
    if "data" in payload:
        try:
            body = json.dumps(payload["data"], allow_nan=False, separators=(",", ":")).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise PayloadError("data", f"cannot be sent as JSON ({exc})") from None
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json"
    return WebhookRequest(url, method.upper(), body, headers, _timeout(payload.get("timeout")))


# --- the processor -------------------------------------------------------------------------------


def _remaining(deadline: float, timeout: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError(f"timed out after {timeout:g}s")
    return left


def _read_body(
    response: http.client.HTTPResponse, sock: Any, deadline: float, timeout: float, ctx: Context
) -> tuple[str, bool]:
    """The first :data:`BODY_CHARS` characters of the body, and whether there was more."""
    raw = bytearray()
    more = False
    while True:
        ctx.check()
        if sock is not None:
            sock.settimeout(_remaining(deadline, timeout))
        if len(raw) >= _BODY_BYTES:
            more = bool(response.read1(1))
            break
        chunk = response.read1(min(_READ_CHUNK, _BODY_BYTES - len(raw)))
        if not chunk:
            break
        raw += chunk
    charset = response.headers.get_content_charset() or "utf-8"
    try:
        codecs.lookup(charset)
    except LookupError:
        charset = "utf-8"
    text = bytes(raw).decode(charset, errors="replace")
    return text[:BODY_CHARS], more or len(text) > BODY_CHARS


class WebhookProcessor:
    """Runs ``webhook`` jobs. A non-2xx answer or network error fails the attempt (it may be retried);
    a refused destination or a bad payload fails the job at once."""

    name = "webhook"
    timeout = 60.0
    retry = RetryDefaults(max_retries=5, initial_delay=5.0)

    def can_process(self, job_type: str) -> bool:
        return job_type == self.name

    def validate_payload(self, payload: dict[str, Any]) -> None:
        parse_payload(payload)

    def process(self, job: Job, ctx: Context) -> dict[str, Any]:
        request = parse_payload(job.payload)
        timeout = min(request.timeout, ctx.time_left())
        if timeout <= 0:
            raise WebhookError("webhook: no time left before the job's deadline")
        return self.send(request, ctx, timeout)

    def send(self, request: WebhookRequest, ctx: Context, timeout: float) -> dict[str, Any]:
        """Make the request, following redirects, within ``timeout`` seconds in all."""
        deadline = time.monotonic() + timeout
        allowed_networks = tuple(settings.ZIPLINE.webhook.allowed_networks)
        url, method, body, headers = request.url, request.method, request.body, dict(request.headers)
        target = _parse_url(url, "url")
        first_origin = target.origin
        for hop in range(MAX_REDIRECTS + 1):
            ctx.check()
            try:
                addresses = _allowed_addresses(target, allowed_networks)
                status, reason, location, text, truncated = self._exchange(
                    target, addresses, method, body, headers, deadline, timeout, ctx
                )
            except TimeoutError:
                raise WebhookError(f"webhook {method} {target.origin}: timed out after {timeout:g}s") from None
            except (OSError, http.client.HTTPException) as exc:
                raise WebhookError(f"webhook {method} {target.origin}: {type(exc).__name__}: {exc}") from exc
            if status in REDIRECT_STATUSES and location is not None:
                if hop == MAX_REDIRECTS:
                    break
                next_target = _parse_url(urljoin(url, location), f"redirect from {target.origin}")
                url = urljoin(url, location)
                if status == 303 or (status in (301, 302) and method == "POST"):
                    method, body = "GET", None
                    headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
                if next_target.origin != target.origin:
                    headers = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIAL_HEADERS}
                ctx.logger.info("webhook redirected (%s) from %s to %s", status, target.origin, next_target.origin)
                target = next_target
                continue
            if not 200 <= status < 300:
                snippet = text[:200].strip()
                raise WebhookError(
                    f"webhook {method} {target.origin} answered {status} {reason}" + (f": {snippet}" if snippet else "")
                )
            ctx.logger.info("webhook %s %s answered %s", method, target.origin, status)
            return {"status_code": status, "body": text, "truncated": truncated}
        raise WebhookError(f"webhook {request.method} {first_origin}: more than {MAX_REDIRECTS} redirects")

    @staticmethod
    def _exchange(
        target: _Target,
        addresses: list[_Address],
        method: str,
        body: bytes | None,
        headers: dict[str, str],
        deadline: float,
        timeout: float,
        ctx: Context,
    ) -> tuple[int, str, str | None, str, bool]:
        """One request and its answer: status, reason, redirect location, body text, truncated."""
        connection_class = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
        connection = connection_class(target.host, target.port, addresses, _remaining(deadline, timeout))
        response: http.client.HTTPResponse | None = None
        try:
            sent = {"User-Agent": USER_AGENT, "Accept": "*/*", **headers}
            connection.request(method, target.path, body=body, headers=sent)
            # Kept: getresponse() hands a closing connection's socket to the response and forgets it.
            sock = connection.sock
            if sock is not None:
                sock.settimeout(_remaining(deadline, timeout))
            response = connection.getresponse()
            location = response.getheader("Location") if response.status in REDIRECT_STATUSES else None
            if location is not None:
                return response.status, response.reason, location, "", False
            text, truncated = _read_body(response, sock, deadline, timeout, ctx)
            return response.status, response.reason, None, text, truncated
        finally:
            if response is not None:
                response.close()
            connection.close()
