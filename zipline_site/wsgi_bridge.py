"""Django's WSGI application run from an ASGI server, on a fixed pool of threads.

Why not Django's own ASGI handler: it runs each synchronous view in a thread of the request's own, so a
database connection lives for one request (Django advises turning persistent connections off under
ASGI). Here every request but the waiting ones runs as under gunicorn's threads: the same WSGI
application, middleware and thread-local database connections (``CONN_MAX_AGE``) on ``threads`` threads
per process; only the event loop in front is new. :func:`call` returns the whole response (ZipLine's
responses are small JSON; static files are served by whitenoise the same way).
"""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

WsgiApp = Callable[..., Any]
Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]

DEFAULT_THREADS = 4
_threads = {"count": DEFAULT_THREADS}


def configure(threads: int) -> None:
    """How many threads each process runs the WSGI application on (gunicorn's ``--threads``)."""
    _threads["count"] = max(1, int(threads))


@dataclass
class WsgiResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    extra: dict[str, str] = field(default_factory=dict)

    def pop_header(self, name: str) -> str | None:
        """Remove the header ``name`` (any case) and return its value, or None."""
        lowered = name.lower()
        found = [value for key, value in self.headers if key.lower() == lowered]
        self.headers = [(key, value) for key, value in self.headers if key.lower() != lowered]
        return found[0] if found else None

    async def send(self, send: Send, head: bool = False) -> None:
        """Send it; without its body for HEAD (its headers still say the length a GET would have)."""
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else self.body})


async def read_body(receive: Receive, cap: int | None = None) -> bytes:
    """The request's body, at most ``cap`` bytes of it: a body over every limit of the application is not
    read on (nor held in memory); Django answers it from its declared length (413), or a chunked one 411."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        if cap is not None and size + len(chunk) > cap:
            chunks.append(chunk[: cap - size])
            break
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def environ_of(scope: Scope, body: bytes, extra: dict[str, str] | None = None) -> dict[str, Any]:
    """The WSGI environ of an ASGI HTTP request (PEP 3333)."""
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client") or ("", 0)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", "").encode("utf-8").decode("latin-1"),
        "PATH_INFO": scope["path"].encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1]),
        "REMOTE_ADDR": str(client[0]),
        "REMOTE_PORT": str(client[1]),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        **(extra or {}),
    }
    for raw_name, raw_value in scope.get("headers", []):
        name = raw_name.decode("latin-1").upper()
        if "_" in name:  # as gunicorn: X_Forwarded_For must not pass for X-Forwarded-For
            continue
        value = raw_value.decode("latin-1")
        key = name.replace("-", "_")
        key = key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


def run(app: WsgiApp, environ: dict[str, Any]) -> WsgiResponse:
    """Call the WSGI application in this thread and collect its whole response."""
    started: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        started["status"], started["headers"] = status, headers
        return lambda data: None  # the legacy write(): Django never calls it

    result = app(environ, start_response)
    try:
        body = b"".join(bytes(chunk) for chunk in result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()  # Django's request_finished: its connections are recycled as under gunicorn
    return WsgiResponse(int(started["status"].split(" ", 1)[0]), list(started["headers"]), body)


class WsgiBridge:
    """An ASGI callable that serves ``app`` on this process's pool of threads."""

    def __init__(self, app: WsgiApp, body_cap: int | None = None) -> None:
        self.app = app
        self.body_cap = body_cap  # the largest body any view accepts: more is never read
        self.pool = ThreadPoolExecutor(max_workers=_threads["count"], thread_name_prefix="zipline-api")

    async def call(self, scope: Scope, body: bytes, extra: dict[str, str] | None = None) -> WsgiResponse:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, run, self.app, environ_of(scope, body, extra))

    async def run_in_pool(self, function: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, function)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.call(scope, await read_body(receive, self.body_cap))
        await response.send(send, head=scope["method"] == "HEAD")
