"""The gunicorn worker that serves the API (``worker_class`` in :mod:`zipline_site.gunicorn`): uvicorn's,
set as gunicorn's own workers behaved, so that serving through ASGI changes nothing a client or the
rate limits see.

* ``proxy_headers`` off: ``REMOTE_ADDR`` is the peer that connected, as under gunicorn's workers. uvicorn
  would otherwise take the client's address from ``X-Forwarded-For`` when the peer is 127.0.0.1, and a
  local client could pick the address that the failed-login limit counts (docs/security.md). HTTPS
  behind a proxy is Django's ``SECURE_PROXY_SSL_HEADER``, as before.
* ``lifespan`` on: each process starts listening for job endings as it starts (:mod:`zipline_site.asgi`).
* no ``Server`` header naming the software.
* HTTP parsed by ``httptools`` (C, llhttp) rather than ``h11`` (pure Python): a request's parse and its
  answer's write cost the worker far less CPU, most of all a batch's large body.
* told to stop (SIGTERM, SIGINT), the process answers its waiting requests at once, each with its job
  as it is (``Zipline-Wait: timeout``), instead of holding the stop for up to a minute and then being
  cut off by gunicorn's graceful timeout.
"""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any

from gunicorn.arbiter import Arbiter
from uvicorn import Server
from uvicorn_worker import UvicornWorker


class _StoppingServer(Server):
    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        from zipline_site.asgi import drain  # the app this worker serves: loaded by now

        drain()


class ApiWorker(UvicornWorker):  # type: ignore[misc]  # uvicorn_worker is untyped
    CONFIG_KWARGS: dict[str, Any] = {
        "loop": "asyncio",
        "http": "httptools",
        "proxy_headers": False,
        "lifespan": "on",
        "server_header": False,
    }

    async def _serve(self) -> None:
        """uvicorn_worker 0.4.0's own (pinned in requirements.txt), with the server above."""
        self.config.app = self.wsgi
        server = _StoppingServer(config=self.config)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
