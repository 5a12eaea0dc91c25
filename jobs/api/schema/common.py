"""OpenAPI pieces drf-spectacular cannot infer: the bearer scheme, the error responses with examples,
the seed's examples, links between operations (for clients and schemathesis' stateful tests) and the
API's description."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiExample, OpenApiResponse

from jobs.api.errors import ERROR_CODES, error_body
from jobs.api.serializers import ErrorSerializer
from jobs.registry import registry

DESCRIPTION = """\
ZipLine's REST API: submit jobs, follow them, cancel and retry them, and watch queues and workers.

**Authentication.** Every `/api/v1/` endpoint needs a token: `Authorization: Bearer <token>` (DRF's
`Authorization: Token <token>` works too). `python manage.py createtoken <user> [--viewer | --operator]`
prints a new one, once; tokens are managed in the admin. Any token may submit jobs; reading (every GET)
needs the `jobs.view_job` permission (schedules: `scheduler.view_schedule`), cancel and retry
`jobs.change_job`, delete `jobs.delete_job`, pause and resume `jobs.change_queuestate`. `/health` is open.

**Errors.** Every error has one shape: `{"error": {"code", "message", "details": {field: [messages]}}}`.
`details` names each offending field (`retry.max_delay`, `jobs[3].type`). Codes: 400 `invalid`,
`malformed_json`; 401 `not_authenticated`, `authentication_failed`; 403 `permission_denied`; 404
`not_found` (also for a malformed id); 405; 409 `invalid_state`, `conflict`; 413 `payload_too_large`;
415 `unsupported_media_type`; 429 `throttled` (with `Retry-After`); 503 `unavailable`.

**Formats.** Durations are Go-style strings (`250ms`, `5s`, `1h30m`) or numbers of seconds on input, and
strings on output. Date-times are RFC 3339 with a zone. Bodies are JSON (`Content-Type: application/json`),
at most the size of the largest payload plus 64 KiB (a batch: 16 MiB), nested at most 100 levels deep.
"""

SEED_JOB = {
    "name": "send-welcome-email",
    "type": "send_email",
    "payload": {"email": "user@example.com", "subject": "Welcome!", "body": "Thanks for signing up."},
    "priority": 10,
    "queue": "emails",
    "retry": {"max_retries": 3, "backoff": "exponential", "initial_delay": "1s", "max_delay": "1h"},
}

EXAMPLE_ID = "0b6f7d1e-5c1a-4c1e-9d0a-6a3f8f0e2b11"
_NOW = "2026-01-02T15:04:05.123456Z"

SEED_JOB_RESPONSE = {
    "id": EXAMPLE_ID,
    "name": "send-welcome-email",
    "type": "send_email",
    "queue": "emails",
    "priority": 10,
    "status": "pending",
    "attempts": 0,
    "max_retries": 3,
    "schedule_at": None,
    "error": "",
    "cancel_requested": False,
    "created_at": _NOW,
    "updated_at": _NOW,
    "started_at": None,
    "completed_at": None,
    "expires_at": None,
    "payload": SEED_JOB["payload"],
    "retry": {"max_retries": 3, "backoff": "exponential", "initial_delay": "1s", "max_delay": "1h", "jitter": True},
    "timeout": None,
    "result": None,
    "traceback": "",
    "idempotency_key": None,
    "group": "",
    "unique_key": None,
    "worker": "",
    "duration": None,
    "attempt_history": [],
    "depends_on": [],
    "on_parent_failure": "cancel",
    "batch": None,
    "workflow": None,
}
# The answer to a submission says whether it duplicated an earlier unique job.
SEED_SUBMIT_RESPONSE = {**SEED_JOB_RESPONSE, "duplicate": False}

_ERROR_EXAMPLES: dict[int, tuple[str, str, dict[str, list[str]]]] = {
    400: (
        "invalid",
        "priority: 500 is out of range (-100 to 100)",
        {"priority": ["500 is out of range (-100 to 100)"]},
    ),
    401: ("not_authenticated", "Authentication credentials were not provided.", {}),
    403: ("permission_denied", "this action needs the jobs.change_job permission", {}),
    404: ("not_found", "no job 0b6f7d1e-5c1a-4c1e-9d0a-6a3f8f0e2b11", {}),
    405: ("method_not_allowed", 'Method "PUT" not allowed.', {}),
    409: (
        "invalid_state",
        "job 0b6f7d1e-5c1a-4c1e-9d0a-6a3f8f0e2b11 is completed; only a waiting or running job can be cancelled",
        {"status": ["is completed"]},
    ),
    413: ("payload_too_large", "payload is 2000000 bytes of JSON; the limit is 1048576 (JQS_MAX_PAYLOAD_BYTES)", {}),
    415: ("unsupported_media_type", 'Unsupported media type "text/plain" in request.', {}),
    429: ("throttled", "Request was throttled. Expected available in 12 seconds.", {}),
    503: ("unavailable", "Redis is unavailable; try again shortly", {}),
}


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """Documented error responses for an operation: the shared Error shape with an example each."""
    out = {}
    for status in statuses:
        code, message, details = _ERROR_EXAMPLES[status]
        meaning = "; ".join(f"`{c}`: {m}" for c, m in ERROR_CODES[status].items())
        out[status] = OpenApiResponse(
            ErrorSerializer,
            description=meaning,
            examples=[OpenApiExample(f"{status} {code}", value=error_body(code, message, details))],
        )
    return out


#: The errors every authenticated endpoint can answer with.
COMMON_ERRORS = (401, 429, 503)


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "jobs.api.auth.BearerTokenAuthentication"
    name = "bearerAuth"
    priority = 1

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A token from `manage.py createtoken <user>` or the admin (shown once). `Token <token>` is accepted too.",
        }


def _link(operation_id: str, expression: str, description: str, parameter: str = "job_id") -> dict[str, Any]:
    return {"operationId": operation_id, "parameters": {parameter: expression}, "description": description}


def _job_links(expression: str) -> dict[str, Any]:
    return {
        "GetJob": _link("get_job", expression, "Read the job."),
        "CancelJob": _link("cancel_job", expression, "Cancel the job."),
        "RetryJob": _link("retry_job", expression, "Retry the job."),
        "DeleteJob": _link("delete_job", expression, "Delete the job once finished."),
    }


def _schedule_links(expression: str) -> dict[str, Any]:
    actions = {
        "GetSchedule": ("get_schedule", "Read the schedule."),
        "UpdateSchedule": ("update_schedule", "Change some of its fields."),
        "ReplaceSchedule": ("replace_schedule", "Replace it."),
        "PauseSchedule": ("pause_schedule", "Pause it."),
        "ResumeSchedule": ("resume_schedule", "Resume it."),
        "TriggerSchedule": ("trigger_schedule", "Submit its job now."),
        "DeleteSchedule": ("delete_schedule", "Delete it."),
    }
    return {name: _link(op, expression, text, "id") for name, (op, text) in actions.items()}


LINKS: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    # (path, method) -> {status: links}
    ("/api/v1/jobs", "post"): {"201": _job_links("$response.body#/id"), "200": _job_links("$response.body#/id")},
    ("/api/v1/jobs/batch", "post"): {"201": _job_links("$response.body#/jobs/0/id")},
    ("/api/v1/jobs/{job_id}", "get"): {"200": _job_links("$response.body#/id")},
    ("/api/v1/jobs/{job_id}/cancel", "post"): {"200": _job_links("$response.body#/id")},
    ("/api/v1/jobs/{job_id}/retry", "post"): {"200": _job_links("$response.body#/id")},
    ("/api/v1/schedules", "post"): {"201": _schedule_links("$response.body#/id")},
    ("/api/v1/schedules/{id}", "get"): {"200": _schedule_links("$response.body#/id")},
    ("/api/v1/schedules/{id}/trigger", "post"): {"201": _job_links("$response.body#/job/id")},
}


# Request bodies whose unknown fields the API refuses by name (a typo must not pass silently).
CLOSED_BODIES = (
    "JobSubmit",
    "RetryPolicyInput",
    "JobBatchSubmit",
    "Schedule",
    "PatchedSchedule",
    "JobTemplate",
    "PatchedQueueLimits",
    "GroupWeight",
)


def postprocess(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular POSTPROCESSING_HOOK: the description, closed request bodies and the links."""
    result.setdefault("info", {})["description"] = DESCRIPTION
    components = result.get("components", {}).get("schemas", {})
    for name in CLOSED_BODIES:
        if name in components:
            components[name]["additionalProperties"] = False
    # The job types this deployment runs: any other is refused, so the schema says so.
    for name in ("JobSubmit", "JobTemplate"):
        field = components.get(name, {}).get("properties", {}).get("type")
        if field is not None:
            field["enum"] = registry.types()
    for (path, method), by_status in LINKS.items():
        operation = result.get("paths", {}).get(path, {}).get(method)
        if not operation:
            continue
        for status, links in by_status.items():
            response = operation.get("responses", {}).get(status)
            if response is not None:
                response["links"] = links
    return result
