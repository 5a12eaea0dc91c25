"""Who may do what: the Django permissions ZipLine checks, and the two roles that bundle them.

One rule for the API, the dashboard and the admin: reading jobs (and queues, stats, schedules) needs
``jobs.view_job``; acting on a job needs ``jobs.change_job``, deleting one ``jobs.delete_job``,
pausing a queue ``jobs.change_queuestate``. As in the admin, the change permission implies the view
permission. Submitting needs only a valid token.

The roles are Django groups, so operators manage membership in the admin; ``createtoken --viewer``
and ``--operator`` put the token's user in one (making or updating the group first).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission

VIEW_JOB = "jobs.view_job"
CHANGE_JOB = "jobs.change_job"
DELETE_JOB = "jobs.delete_job"
VIEW_QUEUE = "jobs.view_queuestate"
CHANGE_QUEUE = "jobs.change_queuestate"
VIEW_SCHEDULE = "scheduler.view_schedule"
ADD_SCHEDULE = "scheduler.add_schedule"
CHANGE_SCHEDULE = "scheduler.change_schedule"
DELETE_SCHEDULE = "scheduler.delete_schedule"

VIEWER = "viewer"
OPERATOR = "operator"

#: Each role's group name and permissions. An operator may do everything the API and dashboard offer.
ROLES: dict[str, tuple[str, tuple[str, ...]]] = {
    VIEWER: ("ZipLine viewers", (VIEW_JOB, VIEW_QUEUE, VIEW_SCHEDULE)),
    OPERATOR: (
        "ZipLine operators",
        (
            VIEW_JOB,
            CHANGE_JOB,
            DELETE_JOB,
            VIEW_QUEUE,
            CHANGE_QUEUE,
            VIEW_SCHEDULE,
            ADD_SCHEDULE,
            CHANGE_SCHEDULE,
            DELETE_SCHEDULE,
        ),
    ),
}


def allows(user: Any, perm: str) -> bool:
    """Whether ``user`` holds ``perm``; as in the admin, ``app.change_x`` also grants ``app.view_x``."""
    if user.has_perm(perm):
        return True
    app_label, _, codename = perm.partition(".")
    return codename.startswith("view_") and bool(user.has_perm(f"{app_label}.change_{codename[5:]}"))


def can_view_jobs(user: Any) -> bool:
    """May ``user`` read jobs (their payloads, queues, stats)?"""
    return allows(user, VIEW_JOB)


def role_group(role: str) -> Group:
    """The group of ``role``, made if missing and given exactly the role's permissions."""
    name, perms = ROLES[role]
    group, _ = Group.objects.get_or_create(name=name)
    wanted = []
    for perm in perms:
        app_label, codename = perm.split(".", 1)
        wanted.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    group.permissions.set(wanted)
    return group


def grant_role(user: Any, role: str) -> None:
    """Put ``user`` in ``role``'s group."""
    user.groups.add(role_group(role))
