"""``GET /api/v1/``: what the API offers, read from the URL configuration so it cannot drift from it.

Each route under ``/api/v1/`` is listed with its methods (``{job_id}`` marks a path parameter), plus
links to the Swagger UI, ReDoc and the OpenAPI schema, and ``/health``.
"""

from __future__ import annotations

import re
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.request import Request

import zipline_site

API_PREFIX = "/api/v1/"
_METHODS = ("get", "post", "put", "patch", "delete")
_PARAMETER = re.compile(r"<(?:\w+:)?(\w+)>")  # a path() converter: <queue:queue_name>
_REGEX_PARAMETER = re.compile(r"\(\?P<(\w+)>[^)]*\)")  # a router's re_path() group: (?P<pk>[^/.]+)


def _template(route: str) -> str:
    """A route as the OpenAPI schema writes its path: ``/api/v1/schedules/{id}``."""
    path = _PARAMETER.sub(r"{\1}", _REGEX_PARAMETER.sub(r"{\1}", route)).replace("^", "").replace("$", "")
    return path.replace("{pk}", "{id}")  # as drf-spectacular names a model's key


def _methods(pattern: URLPattern) -> list[str]:
    """The HTTP methods a route answers: a viewset's mapped actions, else the view's handlers."""
    callback: Any = pattern.callback
    actions = getattr(callback, "actions", None)
    if actions:
        return [method.upper() for method in _METHODS if method in actions]
    view_class = getattr(callback, "view_class", None)
    return [method.upper() for method in _METHODS if view_class is not None and hasattr(view_class, method)]


def _routes(patterns: list[Any], prefix: str) -> list[tuple[str, URLPattern]]:
    found: list[tuple[str, URLPattern]] = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            found += _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            found.append((prefix + str(pattern.pattern), pattern))
    return found


def api_routes() -> list[dict[str, Any]]:
    """Every route under ``/api/v1/`` but the index itself, in the URL map's order."""
    listed: dict[str, list[str]] = {}
    for route, pattern in _routes(get_resolver().url_patterns, "/"):
        path = _template(route)
        if not path.startswith(API_PREFIX) or path == API_PREFIX or "{format}" in path:
            continue
        methods = listed.setdefault(path, [])
        methods += [method for method in _methods(pattern) if method not in methods]
    return [{"path": path, "methods": methods} for path, methods in listed.items()]


def api_index(request: Request) -> dict[str, Any]:
    """The index document: the routes, with absolute links where a route has no parameter."""

    def link(path: str) -> str:
        return request.build_absolute_uri(path)

    return {
        "name": "ZipLine API",
        "version": zipline_site.__version__,
        "docs": link(reverse("api-docs")),
        "redoc": link(reverse("api-redoc")),
        "schema": link(reverse("api-schema")),
        "health": link(reverse("health")),
        "endpoints": [
            {**route, **({"href": link(route["path"])} if "{" not in route["path"] else {})} for route in api_routes()
        ],
    }
