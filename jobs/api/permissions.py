"""Who may call what (the rules are :mod:`jobs.roles`'): a token submits; reading needs ``jobs.view_job``;
the rest needs the Django permission the view names.

Cancel and retry change a job (``jobs.change_job``), delete removes one (``jobs.delete_job``), pause and
resume change a queue (``jobs.change_queuestate``). A read (GET) needs ``jobs.view_job`` unless the view
names another permission for it. Grant them in the admin, per user or per group, or with
``createtoken --viewer`` / ``--operator``.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from jobs.api.auth import api_open
from jobs.roles import CHANGE_JOB, CHANGE_QUEUE, DELETE_JOB, VIEW_JOB, allows

__all__ = ["CHANGE_JOB", "CHANGE_QUEUE", "DELETE_JOB", "VIEW_JOB", "HasActionPermission", "HasApiAccess"]


class HasApiAccess(BasePermission):
    """An authenticated token, or open mode. Without a token DRF answers 401, with one 403."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return api_open() or bool(request.user and request.user.is_authenticated)


def required_permission(request: Request, view: Any) -> str | None:
    """The permission this request needs: the view's own for its method, else ``jobs.view_job`` for a read."""
    perm = (getattr(view, "required_permissions", None) or {}).get(request.method)
    if perm is None and request.method in SAFE_METHODS:
        return VIEW_JOB
    return perm


class HasActionPermission(HasApiAccess):
    """Also the Django permission :func:`required_permission` names."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if api_open():
            return True
        if not super().has_permission(request, view):
            return False
        perm = required_permission(request, view)
        if perm and not allows(request.user, perm):
            self.message = f"this action needs the {perm} permission"
            return False
        return True
