"""The API's entry point in production: ``gunicorn zipline_site.asgi:application -c python:zipline_site.gunicorn``
(gunicorn runs uvicorn's worker, :mod:`zipline_site.gunicorn`).

Every request but one kind runs Django's WSGI application on a fixed pool of threads per process
(:mod:`zipline_site.wsgi_bridge`), exactly as gunicorn's threads ran it. The exception is a wait on a job
(``GET /api/v1/jobs/{id}?wait=30s``, :mod:`jobs.api.wait`): the view answers its first look on a pool
thread, and if the job has not ended, the request waits on this process's event loop, woken by the job's
end over Redis Pub/Sub (:mod:`jobs.service.watch`), without a thread or a query; then the view answers
again. So 200 waiting clients cost 200 idle connections, not 200 threads.
"""

from __future__ import annotations

import asyncio
import os
from urllib.parse import parse_qs

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "zipline_site.settings")
_django = get_wsgi_application()

from jobs import service  # noqa: E402 - Django is set up above
from jobs.api import wait as api_wait  # noqa: E402
from jobs.api.parsers import largest_body_limit  # noqa: E402
from zipline_site.wsgi_bridge import Receive, Scope, Send, WsgiBridge, WsgiResponse, read_body  # noqa: E402

bridge = WsgiBridge(_django, body_cap=largest_body_limit())
_stopping = {"now": False}


def drain() -> None:
    """The process is stopping: every waiting request answers now, with its job as it is."""
    _stopping["now"] = True
    service.end_watch().wake(None)


async def application(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return  # no WebSocket here: the server closes the connection
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    job_id = api_wait.wait_target(scope["method"], scope["path"], query)
    if job_id is None:
        await bridge(scope, receive, send)
        return
    response = await _serve_wait(job_id, scope, await read_body(receive, bridge.body_cap))
    await response.send(send, head=scope["method"] == "HEAD")


async def _serve_wait(job_id: str, scope: Scope, body: bytes) -> WsgiResponse:
    """Register for the job's end BEFORE the view's first look at its row (an end committed after that
    look wakes the waiter, one before it is seen), then ask the view again after each wake-up until it
    answers for good (it ended, the wait ran out, or the process is stopping: :func:`drain`)."""
    watch = service.end_watch()
    loop = asyncio.get_running_loop()
    watch.start(timeout=0)  # running since the process started; a waiter registered before it subscribes is woken then
    waiter = watch.register(job_id, loop)
    try:
        response = await bridge.call(scope, body, {api_wait.MODE_KEY: "first"})
        deadline: float | None = None
        while (left := response.pop_header(api_wait.DEFER_HEADER)) is not None:
            deadline = loop.time() + float(left) if deadline is None else deadline
            if not _stopping["now"]:
                await waiter.wait_async(deadline - loop.time())
            remaining = 0.0 if _stopping["now"] else max(0.0, deadline - loop.time())
            again = {api_wait.MODE_KEY: "again", api_wait.REMAINING_KEY: f"{remaining:.3f}"}
            response = await bridge.call(scope, body, again)
    finally:
        watch.unregister(waiter)
    return response


async def _lifespan(receive: Receive, send: Send) -> None:
    """Start listening for job endings with the process (the first wait finds it subscribed)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            service.end_watch().start(timeout=0)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            service.end_watch().stop()
            await send({"type": "lifespan.shutdown.complete"})
            return
