"""Secrets in payloads are masked for readers who did not submit the job.

A webhook job carries its ``Authorization`` header, an email job may carry an SMTP password: anyone
who may read jobs should not learn them. The value under any key that looks secret (its name, lowercase
and without ``-``/``_``/spaces, contains ``authorization``, ``cookie``, ``password``, ``token``,
``secret`` or ``apikey``), at any depth, is shown as :data:`MASK` in the API, the admin and the
dashboard, except to the job's submitter and to superusers; so is the result's (a processor may hand
back what it was given). So is the password of a URL in any string value (``https://user:***@host``),
whatever its key: a webhook's ``url`` may carry credentials. Only what is shown is masked: the row keeps the real payload, and the worker
runs with it.
"""

from __future__ import annotations

import re
from typing import Any

from zipline_site.config import mask_passwords

MASK = "********"
SECRET_KEY_PARTS = ("authorization", "cookie", "password", "token", "secret", "apikey")
_SEPARATORS = re.compile(r"[-_\s]")


def looks_secret(key: object) -> bool:
    """Whether a value under ``key`` is masked (``X-Api-Key``, ``db_password``, ``Set-Cookie``...)."""
    if not isinstance(key, str):
        return False
    name = _SEPARATORS.sub("", key.lower())
    return any(part in name for part in SECRET_KEY_PARTS)


def masked(value: Any) -> Any:
    """A copy of ``value`` with the value under every secret-looking key, at any depth, replaced."""
    if isinstance(value, dict):
        return {key: MASK if looks_secret(key) else masked(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [masked(inner) for inner in value]
    if isinstance(value, str) and "://" in value:
        return mask_passwords(value)
    return value


def sees_secrets(user: Any, job: Any) -> bool:
    """Superusers and the user who submitted ``job`` see its payload as it is."""
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    return bool(user.is_superuser) or (job.submitted_by_id is not None and job.submitted_by_id == user.pk)


def sees_template_secrets(user: Any, change_permission: str) -> bool:
    """A job template (a schedule's) has no submitter: who may edit it sees it as it is. They could point it
    at a server of theirs and collect its secrets anyway, and what they send back must not overwrite the
    secrets with the mask; readers who may not edit it see it masked."""
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    return bool(user.has_perm(change_permission))


def payload_for(user: Any, job: Any) -> Any:
    """``job``'s payload as ``user`` may see it."""
    return job.payload if sees_secrets(user, job) else masked(job.payload)


def result_for(user: Any, job: Any) -> Any:
    """``job``'s result as ``user`` may see it: a processor may hand back what it was given."""
    return job.result if sees_secrets(user, job) else masked(job.result)
