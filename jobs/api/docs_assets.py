"""ReDoc's bundle without its one request to another host.

drf-spectacular's sidecar ships ReDoc's standalone bundle, which draws the "API docs by Redocly"
link with an image from ``cdn.redoc.ly``. ZipLine serves the bundle itself with that address
replaced by an empty inline image, so the docs page loads nothing from outside ZipLine (and works
where the CDN cannot be reached). The browser tests fail on any request to another host.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from django.contrib.staticfiles import finders
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

BUNDLE = "drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"
REMOTE_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
#: An empty SVG: the link keeps its text, without a picture from elsewhere.
LOCAL_LOGO = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='0' height='0'/%3E"


@cache
def redoc_bundle() -> bytes:
    """The sidecar's ReDoc bundle with the CDN logo replaced (read once per process)."""
    found = finders.find(BUNDLE)
    if not found:
        raise FileNotFoundError(BUNDLE)
    path = Path(found if isinstance(found, str) else found[0])
    return path.read_text(encoding="utf-8").replace(REMOTE_LOGO, LOCAL_LOGO).encode()


@require_GET
def redoc_js(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(redoc_bundle(), content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "public, max-age=86400"
    return response
