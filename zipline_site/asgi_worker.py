"""The gunicorn worker that serves the API (``worker_class`` in :mod:`zipline_site.gunicorn`): uvicorn's,
set as gunicorn's own workers behaved, so that serving through ASGI changes nothing a client or the
rate limits see.

* ``proxy_headers`` off: ``REMOTE_ADDR`` is the peer that connected, as under gunicorn's workers. uvicorn
  would otherwise take the client's address from ``X-Forwarded-For`` when the peer is 127.0.0.1, and a
  local client could pick the address that the failed-login limit counts (docs/security.md). HTTPS
  behind a proxy is Django's ``SECURE_PROXY_SSL_HEADER``, as before.
* ``lifespan`` on: each process starts listening for job endings as it starts (:mod:`zipline_site.asgi`).
* no ``Server`` header naming the software.
"""

from __future__ import annotations

from typing import Any

from uvicorn_worker import UvicornWorker


class ApiWorker(UvicornWorker):  # type: ignore[misc]  # uvicorn_worker is untyped
    CONFIG_KWARGS: dict[str, Any] = {
        "loop": "asyncio",
        "http": "h11",
        "proxy_headers": False,
        "lifespan": "on",
        "server_header": False,
    }
