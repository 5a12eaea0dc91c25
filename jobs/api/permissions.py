"""Who may call what: any token for reading and submitting; a Django permission for the rest.

Cancel and retry change a job (``jobs.change_job``), delete removes one (``jobs.delete_job``), pause and
resume change a queue (``jobs.change_queuestate``). Grant them in the admin, per user or per group.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from jobs.api.auth import api_open

CHANGE_JOB = "jobs.change_job"
DELETE_JOB = "jobs.delete_job"
CHANGE_QUEUE = "jobs.change_queuestate"


class HasApiAccess(BasePermission):
    """An authenticated token, or open mode. Without a token DRF answers 401, with one 403."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return api_open() or bool(request.user and request.user.is_authenticated)


class HasActionPermission(HasApiAccess):
    """Also the Django permission the view names for this method in ``required_permissions``."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if api_open():
            return True
        if not super().has_permission(request, view):
            return False
        perm = (getattr(view, "required_permissions", None) or {}).get(request.method)
        if perm and not request.user.has_perm(perm):
            self.message = f"this action needs the {perm} permission"
            return False
        return True
