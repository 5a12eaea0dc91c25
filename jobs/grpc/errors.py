"""Errors of the gRPC API: what REST would answer, as a gRPC status, in one table.

Any exception is first translated exactly as the REST API translates it (:func:`jobs.api.errors.translate`:
the service's domain errors, DRF's, the database's and Redis's), so both APIs refuse the same things with
the same message; :data:`STATUS_CODES` then maps REST's stable ``code`` word onto a gRPC status code. The
fields REST names in ``details`` become ``google.rpc.BadRequest`` field violations in the rich status
(``grpc-status-details-bin``, read with ``grpc_status.rpc_status.from_call``), and a rate limit's wait a
``google.rpc.RetryInfo``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from jobs.api.errors import translate

#: REST's error ``code`` (:data:`jobs.api.errors.ERROR_CODES`) -> the gRPC status code.
STATUS_CODES: dict[str, grpc.StatusCode] = {
    "invalid": grpc.StatusCode.INVALID_ARGUMENT,
    "malformed_json": grpc.StatusCode.INVALID_ARGUMENT,
    "bad_request": grpc.StatusCode.INVALID_ARGUMENT,
    "not_authenticated": grpc.StatusCode.UNAUTHENTICATED,
    "authentication_failed": grpc.StatusCode.UNAUTHENTICATED,
    "permission_denied": grpc.StatusCode.PERMISSION_DENIED,
    "not_found": grpc.StatusCode.NOT_FOUND,
    "invalid_state": grpc.StatusCode.FAILED_PRECONDITION,
    "conflict": grpc.StatusCode.ALREADY_EXISTS,
    "payload_too_large": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "throttled": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "unavailable": grpc.StatusCode.UNAVAILABLE,
    "server_error": grpc.StatusCode.INTERNAL,
}


def rich_status(code: grpc.StatusCode, message: str, details: Mapping[str, list[str]], wait: float | None) -> Any:
    """The ``grpc.Status`` to abort with: the code, the message, and the field violations and wait as details."""
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message)
    if details:
        violations = [
            error_details_pb2.BadRequest.FieldViolation(field=field, description=text)
            for field, texts in details.items()
            for text in texts
        ]
        packed = any_pb2.Any()
        packed.Pack(error_details_pb2.BadRequest(field_violations=violations))
        status.details.append(packed)
    if wait is not None:
        packed = any_pb2.Any()
        packed.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=max(1, int(wait)))))
        status.details.append(packed)
    return rpc_status.to_status(status)


class CallEnded(Exception):
    """A call ends with a status REST has no word for (a watch that outlived its deadline)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def abort(context: grpc.ServicerContext, exc: BaseException) -> NoReturn:
    """End the call with the status ``exc`` translates to (unknown errors: INTERNAL, logged by the translation)."""
    if isinstance(exc, CallEnded):
        context.abort(exc.code, exc.message)
    _, code, message, details = translate(exc)
    wait = getattr(exc, "wait", None) if code == "throttled" else None
    context.abort_with_status(rich_status(STATUS_CODES[code], message, details, wait))
    raise AssertionError("abort_with_status returns only by raising")  # pragma: no cover
