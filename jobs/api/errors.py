"""One error shape for the whole API, whatever failed: the view, DRF, or Django before the view.

Every error response is ``{"error": {"code": ..., "message": ..., "details": {field: [messages]}}}``:
``code`` is a stable machine-readable word (the table below), ``message`` one human sentence, and
``details`` names each offending field (``retry.max_delay``, ``jobs[3].type``) or is empty. The schema
documents this shape as ``Error`` (see :mod:`jobs.api.schema`).

DRF calls :func:`exception_handler` for anything a view raises (the service's domain errors,
:mod:`jobs.service.errors`, get their status here and nowhere else); Django calls :func:`handler404`,
:func:`handler500` and friends (wired in ``zipline_site/urls.py``) for what never reaches a view, and
those answer in this shape for ``/api/`` and ``/health`` and with Django's own pages elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import psycopg
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, RequestDataTooBig
from django.db import DatabaseError, DataError, IntegrityError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response

from jobs.service import errors as domain

logger = logging.getLogger("zipline.api")

#: Every ``code`` the API answers with, by HTTP status (the schema's descriptions come from here).
ERROR_CODES: dict[int, dict[str, str]] = {
    400: {
        "invalid": "a field (named in details) has a value ZipLine refuses",
        "malformed_json": "the body is not JSON",
        "bad_request": "the request itself is malformed",
    },
    401: {
        "not_authenticated": "no token was given",
        "authentication_failed": "the token is unknown or its user is inactive",
    },
    403: {"permission_denied": "the token's user lacks the permission this action needs"},
    404: {"not_found": "no such job (also for a malformed id) or no such endpoint"},
    405: {"method_not_allowed": "the endpoint does not take this method"},
    406: {"not_acceptable": "the Accept header excludes JSON"},
    409: {
        "invalid_state": "the job's status does not allow the action",
        "conflict": "the write conflicts with existing data (an idempotency key reused for a different request, or in a batch)",
    },
    413: {"payload_too_large": "the body or a job's payload is over its limit"},
    415: {"unsupported_media_type": "the body is not application/json"},
    429: {"throttled": "too many requests; retry after Retry-After seconds"},
    500: {"server_error": "a bug: the error is logged"},
    503: {"unavailable": "Redis or the database cannot be reached"},
}


class ApiError(exceptions.APIException):
    """An error a view raises on purpose, with its status, code and per-field details."""

    def __init__(
        self, status_code: int, code: str, message: str, details: Mapping[str, list[str]] | None = None
    ) -> None:
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = dict(details or {})


def payload_too_large(limit: int, what: str = "body") -> ApiError:
    return ApiError(413, "payload_too_large", f"the request {what} is over the limit of {limit} bytes", {})


def error_body(code: str, message: str, details: Mapping[str, list[str]] | None = None) -> dict[str, Any]:
    """The JSON of an error response."""
    return {"error": {"code": code, "message": message, "details": dict(details or {})}}


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested ValidationError detail as ``{"a.b": ["message"]}``."""
    if isinstance(detail, Mapping):
        out: dict[str, list[str]] = {}
        for key, value in detail.items():
            if isinstance(key, int):  # a ListField's items
                out.update(_flatten(value, f"{prefix}[{key}]"))
                continue
            name = str(key) if key != "non_field_errors" or prefix else "body"
            out.update(_flatten(value, f"{prefix}.{name}" if prefix else name))
        return out
    if isinstance(detail, list) and detail and all(isinstance(d, Mapping) for d in detail):
        out = {}
        for index, value in enumerate(detail):
            out.update(_flatten(value, f"{prefix}[{index}]"))
        return out
    messages = [str(d) for d in detail] if isinstance(detail, list) else [str(detail)]
    return {prefix or "body": messages}


_DRF_CODES: tuple[tuple[type[exceptions.APIException], str], ...] = (
    (exceptions.ParseError, "malformed_json"),
    (exceptions.NotAuthenticated, "not_authenticated"),
    (exceptions.AuthenticationFailed, "authentication_failed"),
    (exceptions.PermissionDenied, "permission_denied"),
    (exceptions.NotFound, "not_found"),
    (exceptions.MethodNotAllowed, "method_not_allowed"),
    (exceptions.NotAcceptable, "not_acceptable"),
    (exceptions.UnsupportedMediaType, "unsupported_media_type"),
    (exceptions.Throttled, "throttled"),
)


Translation = tuple[int, str, str, dict[str, list[str]]]


def _domain(exc: BaseException) -> Translation | None:
    """The API's own errors and the service's domain errors (:mod:`jobs.service.errors`)."""
    if isinstance(exc, ApiError):
        return exc.status_code, exc.code, exc.message, exc.details
    if isinstance(exc, domain.PayloadTooLarge):
        return 413, "payload_too_large", f"{exc.field} {exc.message}", {exc.field: [exc.message]}
    if isinstance(exc, domain.IdempotencyConflict):
        return 409, "conflict", f"{exc.field}: {exc.message}", {exc.field: [exc.message]}
    if isinstance(exc, domain.InvalidJob):
        return 400, "invalid", f"{exc.field}: {exc.message}", {exc.field: [exc.message]}
    if isinstance(exc, domain.TransitionError):
        return 409, "invalid_state", str(exc), {"status": [f"is {exc.current}"]}
    if isinstance(exc, domain.JobNotFound | domain.WorkflowNotFound | domain.BatchNotFound):
        return 404, "not_found", str(exc), {}
    if isinstance(exc, domain.KeysReused):
        return 409, "conflict", str(exc), exc.details
    return None


def _framework(exc: BaseException) -> Translation | None:
    """DRF's and Django's errors."""
    if isinstance(exc, exceptions.ValidationError):
        details = _flatten(exc.detail)
        first = next(iter(details.items()), ("body", ["invalid"]))
        return 400, "invalid", f"{first[0]}: {first[1][0]}", details
    if isinstance(exc, exceptions.ParseError):
        return 400, "malformed_json", f"the body is not valid JSON ({exc.detail})", {"body": [str(exc.detail)]}
    if isinstance(exc, exceptions.APIException):
        for cls, code in _DRF_CODES:
            if isinstance(exc, cls):
                return exc.status_code, code, str(exc.detail), {}
        return exc.status_code, str(exc.default_code), str(exc.detail), {}
    if isinstance(exc, (Http404, ObjectDoesNotExist)):
        return 404, "not_found", "not found", {}
    if isinstance(exc, PermissionDenied):
        return 403, "permission_denied", "you do not have permission to perform this action", {}
    if isinstance(exc, RequestDataTooBig):
        return 413, "payload_too_large", "the request body is over the size limit", {}
    if isinstance(exc, RecursionError):
        return 400, "invalid", "the JSON is nested too deeply", {"body": ["nested too deeply"]}
    return None


def _storage(exc: BaseException) -> Translation | None:
    """What the database and Redis refuse, or their being out of reach."""
    if isinstance(exc, (IntegrityError, psycopg.IntegrityError)):
        return 409, "conflict", "the write conflicts with existing data; nothing was written", {}
    if isinstance(exc, (DataError, psycopg.DataError)):
        first_line = str(exc).splitlines()[0]
        return 400, "invalid", f"the database refused a value: {first_line}", {"body": [first_line]}
    if isinstance(exc, (DatabaseError, psycopg.Error)):
        logger.warning("database unavailable", extra={"error": str(exc)})
        return 503, "unavailable", "the database is unavailable; try again shortly", {}
    if isinstance(exc, domain.BrokerUnavailable):
        logger.warning("redis unavailable", extra={"error": str(exc)})
        return 503, "unavailable", "Redis is unavailable; try again shortly", {}
    return None


def translate(exc: BaseException) -> Translation:
    """(status, code, message, details) for any exception; unknown ones are a logged 500. The gRPC API
    translates through here too (:mod:`jobs.grpc.errors`), so both answer alike."""
    for step in (_domain, _framework, _storage):
        found = step(exc)
        if found is not None:
            return found
    logger.error("unhandled API error", exc_info=(type(exc), exc, exc.__traceback__))
    return 500, "server_error", "internal error; it has been logged", {}


def exception_handler(exc: Exception, context: Mapping[str, Any]) -> Response:
    """DRF's EXCEPTION_HANDLER: every error a view raises becomes one JSON error response."""
    # Imported here: DRF's views import the parsers, which import this module (the gRPC API imports it first).
    from rest_framework.views import set_rollback

    code_status, code, message, details = translate(exc)
    headers: dict[str, str] = {}
    auth_header = getattr(exc, "auth_header", None)
    if auth_header:
        headers["WWW-Authenticate"] = auth_header
    wait = getattr(exc, "wait", None)
    if code_status == 429:
        headers["Retry-After"] = str(max(1, int(wait or 1)))
    if code_status == 401 and "WWW-Authenticate" not in headers:
        headers["WWW-Authenticate"] = 'Bearer realm="api"'
    set_rollback()
    return Response(error_body(code, message, details), status=code_status, headers=headers)


# -- Django-level handlers: requests that never reached a DRF view -----------------------------------


def is_api_path(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or request.path == "/health"


def json_error(status_code: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(code, message), status=status_code)


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if not is_api_path(request):
        return defaults.bad_request(request, exception)  # type: ignore[arg-type]
    if isinstance(exception, RequestDataTooBig):
        return json_error(413, "payload_too_large", "the request body is over the size limit")
    return json_error(400, "bad_request", "bad request")


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if not is_api_path(request):
        return defaults.permission_denied(request, exception)  # type: ignore[arg-type]
    return json_error(403, "permission_denied", "forbidden")


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if not is_api_path(request):
        return defaults.page_not_found(request, exception)
    return json_error(404, "not_found", f"no such endpoint: {request.path}")


def handler500(request: HttpRequest) -> HttpResponse:
    if not is_api_path(request):
        return defaults.server_error(request)
    return json_error(status.HTTP_500_INTERNAL_SERVER_ERROR, "server_error", "internal error; it has been logged")
