"""A Content-Security-Policy on every response: what each part of the site may load and run.

The dashboard and the admin load only their own files and run no inline script, so ``default-src
'self'`` holds for them. The API answers JSON, which loads nothing (``default-src 'none'``). The API
docs run vendored bundles (drf-spectacular's sidecar, served by ZipLine itself) that inject their own
style elements, and ReDoc starts a web worker from a blob: they may add inline styles and blob
workers, still nothing from another host. A response that already has a policy keeps it (a view may
set its own; Django 6's middleware too).
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

HEADER = "Content-Security-Policy"

_COMMON = "base-uri 'self'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"
#: Dashboard, admin, login: own files only. Images may be data: URIs (the dashboard's favicon).
PAGES = f"default-src 'self'; img-src 'self' data:; {_COMMON}"
#: Swagger UI and ReDoc: their bundles inject style elements; ReDoc's search runs in a blob worker.
DOCS = f"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; worker-src 'self' blob:; {_COMMON}"
#: JSON and metrics: nothing to load, nothing to frame.
DATA = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

#: The policy of each path prefix, the first that matches; PAGES for any other path.
BY_PREFIX: tuple[tuple[str, str], ...] = (
    ("/api/docs/", DOCS),
    ("/api/redoc/", DOCS),
    ("/api/", DATA),
    ("/health", DATA),
    ("/metrics", DATA),
)


def policy_for(path: str) -> str:
    for prefix, policy in BY_PREFIX:
        if path.startswith(prefix):
            return policy
    return PAGES


def content_security_policy(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    """Middleware: add the path's policy to a response that has none."""

    def middleware(request: HttpRequest) -> HttpResponse:
        response = get_response(request)
        if HEADER not in response:
            response[HEADER] = policy_for(request.path)
        return response

    return middleware
