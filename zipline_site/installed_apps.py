"""The Django apps a process installs: all of them to serve the web, only the core for the worker pool.

``manage.py runworkers`` runs jobs: it needs the models (``jobs``, and ``auth`` and ``contenttypes``
behind its foreign keys), not the REST API (DRF, drf-spectacular), the admin, sessions, messages,
static files or the API's metrics middleware (``django_prometheus``; the workers export their metrics
with ``prometheus_client`` itself). Installing those apps would import them, and with them the
admin's autodiscovery of every ``admin.py``, into every worker process: slower start-up, more memory.
Django reads the command from ``argv[1]`` (``manage.py runworkers ...``), and so does this.
"""

from __future__ import annotations

from collections.abc import Sequence

CORE_APPS = ("django.contrib.auth", "django.contrib.contenttypes", "jobs", "workers", "scheduler")
WEB_APPS = (
    "django.contrib.admin",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_prometheus",
)

# In this order: an app's templates and static files override those of the apps after it (the admin's first).
ALL_APPS = (WEB_APPS[0], *CORE_APPS[:2], *WEB_APPS[1:], *CORE_APPS[2:])

#: Commands that serve no web page and install only the core apps.
LEAN_COMMANDS = frozenset({"runworkers"})


def is_lean(argv: Sequence[str]) -> bool:
    """True when ``argv`` runs a command of :data:`LEAN_COMMANDS` (``manage.py runworkers ...``)."""
    return len(argv) > 1 and argv[1] in LEAN_COMMANDS


def installed_apps(argv: Sequence[str]) -> list[str]:
    """ZipLine's own ``INSTALLED_APPS`` for a process started with ``argv``."""
    if is_lean(argv):
        return [app for app in ALL_APPS if app not in WEB_APPS]
    return list(ALL_APPS)
