"""Django settings, all read from ZipLine's configuration (``zipline_site.config``): nothing to edit here."""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from zipline_site.config import EXIT_CONFIG_ERROR, Config, ConfigError, load_config, redis_url
from zipline_site.installed_apps import installed_apps, is_lean
from zipline_site.logs import skip_unused_record_fields
from zipline_site.parsers import CLUSTER_SCHEMES

BASE_DIR = Path(__file__).resolve().parent.parent


def _load() -> Config:
    try:
        config = load_config()
    except ConfigError as exc:
        sys.stderr.write(f"zipline: configuration error: {exc}\n")
        raise SystemExit(EXIT_CONFIG_ERROR) from None
    if not config.security.secret_key and not config.security.debug:
        sys.stderr.write("zipline: configuration error: JQS_SECRET_KEY is required (or set JQS_DEBUG=true)\n")
        raise SystemExit(EXIT_CONFIG_ERROR)
    return config


def _database(url: str) -> dict[str, object]:
    if url.startswith("sqlite:///"):
        return _sqlite(Path(url.removeprefix("sqlite:///")))
    parts = urlsplit(url)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")) or "postgres",
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {"connect_timeout": 5},
        "TEST": {"NAME": f"test_{unquote(parts.path.lstrip('/')) or 'zipline'}"},
    }


def _sqlite(path: Path) -> dict[str, object]:
    # WAL lets readers run beside the one writer; IMMEDIATE transactions and a long busy timeout make
    # concurrent writers wait for each other instead of failing with "database is locked".
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        # A file, not memory, so that worker processes started by the tests share it.
        "TEST": {"NAME": path.with_name(f"test_{path.name}")},
        "OPTIONS": {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }


ZIPLINE = _load()

SECRET_KEY = ZIPLINE.security.secret_key or "zipline-insecure-development-key"
DEBUG = ZIPLINE.security.debug
ALLOWED_HOSTS = list(ZIPLINE.security.allowed_hosts)

# JQS_HTTPS: served over HTTPS by a TLS proxy (the Kubernetes ingress). Cookies go only over HTTPS, the
# proxy's X-Forwarded-Proto says whether a request came over TLS (the proxy must set it), browsers are
# told to use HTTPS only (HSTS). The proxy redirects plain HTTP, not ZipLine (check W008 silenced): the
# kubelet's probes, Prometheus and in-cluster clients reach the pods over plain HTTP.
if ZIPLINE.security.https:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = 365 * 86400
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SILENCED_SYSTEM_CHECKS = ["security.W008"]

# runworkers installs only the core apps: no API, admin or dashboard code in a worker (see installed_apps).
INSTALLED_APPS = installed_apps(sys.argv)
# JQS_APPS: the user's apps (one already installed is not installed twice); jobs.apps loads their processors.
INSTALLED_APPS += [app for app in ZIPLINE.apps.installed if app not in INSTALLED_APPS]
# Django's Tasks framework: built in from Django 6.0, the django-tasks backport (an app) before it.
# ZipLine's backend runs every @task as a job on its workers (docs/django-tasks.md); any queue name.
# Not in a worker: the backport imports django-stubs-ext, which imports the admin (the runner imports the
# framework at a worker's first task instead).
if importlib.util.find_spec("django.tasks") is None and not is_lean(sys.argv):
    INSTALLED_APPS.append("django_tasks")
TASKS: dict[str, dict[str, object]] = {
    "default": {"BACKEND": "jobs.tasks_backend.backend.ZipLineBackend", "QUEUES": []}
}

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "zipline_site.csp.content_security_policy",
    "zipline_site.body_length.require_content_length",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "zipline_site.urls"
WSGI_APPLICATION = "zipline_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": _database(ZIPLINE.database.url)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = redis_url(ZIPLINE)
CACHES: dict[str, dict[str, Any]] = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": f"{ZIPLINE.redis.key_prefix}:cache",
        "OPTIONS": {
            "IGNORE_EXCEPTIONS": True,
            "SOCKET_CONNECT_TIMEOUT": 2,
            "SOCKET_TIMEOUT": 2,
            "SERIALIZER": "zipline_site.cache_json.StrictJSONSerializer",  # never pickle: see cache_json
        },
    }
}
if ZIPLINE.redis.sentinels:  # the cache follows the master through the broker's sentinels; it reads the master
    # too (django-redis's SentinelClient reads replicas, which lag: a throttle must see its own writes)
    _netloc = REDIS_URL.split("://", 1)[1].split("/", 1)[0]
    _auth = _netloc.rpartition("@")[0]
    CACHES["default"]["LOCATION"] = (
        f"redis://{_auth + '@' if _auth else ''}{ZIPLINE.redis.sentinel_master}/{REDIS_URL.rsplit('/', 1)[1] or 0}"
    )
    CACHES["default"]["OPTIONS"] |= {
        "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
        "SENTINELS": [
            (host.strip("[]"), int(port))
            for host, _, port in (item.rpartition(":") for item in ZIPLINE.redis.sentinels.split(","))
        ],
        "SENTINEL_KWARGS": {"password": ZIPLINE.redis.sentinel_password or None, "socket_timeout": 1},
    }
if ZIPLINE.redis.cluster or REDIS_URL.startswith(CLUSTER_SCHEMES):  # the cache's keys go to the nodes of their slots
    CACHES["default"]["LOCATION"] = REDIS_URL.split(",")[0]  # one "server" for django-redis; the factory ignores it
    CACHES["default"]["OPTIONS"]["CONNECTION_FACTORY"] = "jobs.broker.cluster_cache.ClusterConnectionFactory"
DJANGO_REDIS_IGNORE_EXCEPTIONS = True

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
FORMAT_MODULE_PATH = ["zipline_site.formats"]  # the admin shows times to the second

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# WhiteNoise serves the admin's, the API docs' and the dashboard's assets from gunicorn itself, from
# STATIC_ROOT after collectstatic (the image runs it) or straight from the apps when it was not run.
WHITENOISE_USE_FINDERS = True
# Without collectstatic there is no STATIC_ROOT, and the finders serve everything: say nothing.
warnings.filterwarnings("ignore", message="No directory at: ")
LOGIN_URL = "/admin/login/"

DATA_UPLOAD_MAX_MEMORY_SIZE = ZIPLINE.api.max_payload_bytes + 64 * 1024

if ZIPLINE.email.host:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = ZIPLINE.email.host
    EMAIL_PORT = ZIPLINE.email.port
    EMAIL_HOST_USER = ZIPLINE.email.user
    EMAIL_HOST_PASSWORD = ZIPLINE.email.password
    EMAIL_USE_TLS = ZIPLINE.email.use_tls
    EMAIL_TIMEOUT = 30
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = ZIPLINE.email.sender

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "zipline_site.logs.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "zipline_site.logs.LineHandler", "formatter": ZIPLINE.logging.format}},
    "root": {"handlers": ["console"], "level": ZIPLINE.logging.level.upper()},
    # kafka-python narrates every connection and rebalance at INFO; runkafka logs what matters on zipline.kafka.
    "loggers": {"django.server": {"level": "WARNING"}, "kafka": {"level": "WARNING"}},
}
skip_unused_record_fields()  # no format prints the caller, and finding it costs every line (a worker logs per job)

# ---- REST API (issue 5; owned by jobs/api) -------------------------------------------------------------
# DRF: token auth (Bearer or Token), JSON only, one error shape, per-scope rate limits in the Redis cache.
# A scope whose rate is None is not limited (and costs no Redis round trip).
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["jobs.api.auth.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["jobs.api.permissions.HasActionPermission"],
    "DEFAULT_PARSER_CLASSES": ["jobs.api.parsers.LimitedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["jobs.api.renderers.SafeJSONRenderer"],
    "DEFAULT_THROTTLE_CLASSES": ["jobs.api.throttling.ScopedThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "submit": ZIPLINE.api.submit_rate,
        "batch": ZIPLINE.api.batch_rate,  # counted per job
        "read": None,
        "write": None,
        "stats": "600/min",
    },
    "EXCEPTION_HANDLER": "jobs.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ZipLine API",
    "DESCRIPTION": "ZipLine's REST API (the full description is set by jobs.api.schema).",
    "VERSION": __import__("zipline_site").__version__,
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},  # no badge from validator.swagger.io
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "JobStatus": "jobs.models.Status",
        "Backoff": "jobs.models.Backoff",
        "AttemptOutcome": "jobs.models.Outcome",
        "CheckStatus": [("ok", "ok"), ("error", "error")],
        "WorkflowStatus": "jobs.api.workflow_serializers.WORKFLOW_STATUSES",
        "BatchStatus": "jobs.api.workflow_serializers.BATCH_STATUSES",
        "ParentFailure": "jobs.models.ParentFailure",
    },
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "jobs.api.schema.postprocess"],
    "TAGS": [
        {"name": "index", "description": "What the API offers, with links to its docs and schema."},
        {"name": "jobs", "description": "Submit, read, list, cancel, retry and delete jobs."},
        {"name": "workflows", "description": "Jobs with dependencies between them, submitted together."},
        {"name": "batches", "description": "Jobs grouped with callbacks enqueued once when they have all ended."},
        {"name": "queues", "description": "Per-queue statistics, pause and resume."},
        {"name": "schedules", "description": "Recurring (cron) jobs."},
        {"name": "stats", "description": "System and worker statistics."},
        {"name": "health", "description": "Liveness of the API and its dependencies (no token)."},
    ],
}
# ---- end of REST API settings --------------------------------------------------------------------------
