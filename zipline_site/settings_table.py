"""The table of every ``JQS_*`` setting: its attribute, YAML place, variable, parser, default and help.

Declared once here; :mod:`zipline_site.sections` gives each value a type and a place, and tests check the
README's configuration table against this one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zipline_site import parsers

# The database when JQS_DATABASE_URL is unset: an SQLite file in the checkout (make run uses .local/'s).
DEFAULT_DATABASE_URL = f"sqlite:///{Path(__file__).resolve().parent.parent / 'zipline.sqlite3'}"


@dataclass(frozen=True)
class Setting:
    """One configuration setting: its attribute, YAML place, variable, parser and default."""

    attribute: str
    section: str | None
    key: str | None
    env: str
    parse: Callable[[Any], Any]
    default: Any
    help: str

    @property
    def yaml_path(self) -> str:
        return ".".join(part for part in (self.section, self.key) if part) or "-"


def _s(attribute: str, place: str | None, env: str, parse: Callable[[Any], Any], default: Any, help: str) -> Setting:
    section, key = place.split(".") if place and "." in place else (place, None)  # "apps": a top-level key
    return Setting(attribute, section, key, env, parse, default, help)


SETTINGS: tuple[Setting, ...] = (
    _s("server_host", "server.host", "JQS_SERVER_HOST", parsers.string, "0.0.0.0", "address the API listens on"),
    _s("server_port", "server.port", "JQS_SERVER_PORT", parsers.integer(1, 65535), 8080, "port the API listens on"),
    _s(
        "grpc_port",
        "server.grpc_port",
        "JQS_SERVER_GRPC_PORT",
        parsers.integer(1, 65535),
        9090,
        "reserved for a gRPC API",
    ),
    _s("redis_host", "redis.host", "JQS_REDIS_HOST", parsers.string, "localhost", "Redis host"),
    _s("redis_port", "redis.port", "JQS_REDIS_PORT", parsers.integer(1, 65535), 6379, "Redis port"),
    _s("redis_password", "redis.password", "JQS_REDIS_PASSWORD", parsers.string, "", "Redis password"),
    _s("redis_database", "redis.database", "JQS_REDIS_DATABASE", parsers.integer(0, 15), 0, "Redis database number"),
    _s(
        "redis_url",
        "redis.url",
        "JQS_REDIS_URL",
        parsers.redis_url,
        "",
        "redis:// or rediss:// URL; overrides host, port, password, database",
    ),
    _s(
        "redis_sentinels",
        "redis.sentinels",
        "JQS_REDIS_SENTINELS",
        parsers.sentinels,
        "",
        "host:port,host:port of Redis Sentinels; set, the master comes from them (see docs/operations.md)",
    ),
    _s(
        "redis_sentinel_master",
        "redis.sentinel_master",
        "JQS_REDIS_SENTINEL_MASTER",
        parsers.string,
        "mymaster",
        "the master's name the sentinels monitor",
    ),
    _s(
        "redis_sentinel_password",
        "redis.sentinel_password",
        "JQS_REDIS_SENTINEL_PASSWORD",
        parsers.string,
        "",
        "the sentinels' own password (the master's is JQS_REDIS_PASSWORD or the URL's)",
    ),
    _s(
        "redis_require_noeviction",
        "redis.require_noeviction",
        "JQS_REDIS_REQUIRE_NOEVICTION",
        parsers.boolean,
        False,
        "refuse to start when Redis may evict keys (maxmemory-policy other than noeviction)",
    ),
    _s(
        "redis_key_prefix",
        "redis.key_prefix",
        "JQS_REDIS_KEY_PREFIX",
        parsers.key_prefix,
        "zipline",
        "prefix of every Redis key",
    ),
    _s(
        "worker_count",
        "worker.count",
        "JQS_WORKER_COUNT",
        parsers.integer(1, 256),
        4,
        "worker processes started by runworkers",
    ),
    _s(
        "worker_max_concurrency",
        "worker.max_concurrency",
        "JQS_WORKER_MAX_CONCURRENCY",
        parsers.integer(1, 100000),
        100,
        "jobs running at once, over all worker processes",
    ),
    _s(
        "worker_poll_interval",
        "worker.poll_interval",
        "JQS_WORKER_POLL_INTERVAL",
        parsers.positive_duration,
        1.0,
        "longest wait of an idle worker on Redis",
    ),
    _s(
        "worker_job_timeout",
        "worker.job_timeout",
        "JQS_WORKER_JOB_TIMEOUT",
        parsers.positive_duration,
        300.0,
        "timeout of a job that sets none",
    ),
    _s(
        "worker_shutdown_timeout",
        "worker.shutdown_timeout",
        "JQS_WORKER_SHUTDOWN_TIMEOUT",
        parsers.duration,
        30.0,
        "grace for running jobs on SIGTERM",
    ),
    _s(
        "worker_lease_ttl",
        "worker.lease_ttl",
        "JQS_WORKER_LEASE_TTL",
        parsers.duration_at_least(1.0),  # renewed from a 0.1 s tick over the network: shorter ones expire while renewed
        30.0,
        "lease of a running job, renewed every third of it",
    ),
    _s(
        "worker_kill_grace",
        "worker.kill_grace",
        "JQS_WORKER_KILL_GRACE",
        parsers.duration,
        5.0,
        "time past a job's timeout before its process is replaced",
    ),
    _s(
        "worker_max_jobs",
        "worker.max_jobs",
        "JQS_WORKER_MAX_JOBS",
        parsers.integer(0, 1_000_000_000),
        0,
        "recycle a worker process after this many jobs (0: never)",
    ),
    _s(
        "scheduler_enabled",
        "scheduler.enabled",
        "JQS_SCHEDULER_ENABLED",
        parsers.boolean,
        True,
        "whether make run starts the scheduler",
    ),
    _s(
        "scheduler_poll_interval",
        "scheduler.poll_interval",
        "JQS_SCHEDULER_POLL_INTERVAL",
        parsers.positive_duration,
        30.0,
        "longest sleep of the scheduler",
    ),
    _s(
        "scheduler_batch_size",
        "scheduler.batch_size",
        "JQS_SCHEDULER_BATCH_SIZE",
        parsers.integer(1, 100000),
        100,
        "jobs moved per scheduler step",
    ),
    _s(
        "scheduler_reclaim_interval",
        "scheduler.reclaim_interval",
        "JQS_SCHEDULER_RECLAIM_INTERVAL",
        parsers.positive_duration,
        5.0,
        "how often expired leases are reclaimed",
    ),
    _s(
        "scheduler_reconcile_grace",
        "scheduler.reconcile_grace",
        "JQS_SCHEDULER_RECONCILE_GRACE",
        parsers.duration,
        10.0,
        "age of a pending row missing from Redis before it is pushed again",
    ),
    _s(
        "retention_completed",
        "scheduler.retention_completed",
        "JQS_RETENTION_COMPLETED",
        parsers.positive_duration,
        7 * 86400.0,
        "age at which completed, cancelled and expired jobs are deleted",
    ),
    _s(
        "retention_failed",
        "scheduler.retention_failed",
        "JQS_RETENTION_FAILED",
        parsers.positive_duration,
        30 * 86400.0,
        "age at which failed jobs are deleted",
    ),
    _s("metrics_enabled", "metrics.enabled", "JQS_METRICS_ENABLED", parsers.boolean, True, "serve Prometheus metrics"),
    _s(
        "metrics_port",
        "metrics.port",
        "JQS_METRICS_PORT",
        parsers.integer(1, 65535),
        9091,
        "port of the workers' metrics endpoint",
    ),
    _s(
        "metrics_path", "metrics.path", "JQS_METRICS_PATH", parsers.url_path, "/metrics", "path of the metrics endpoint"
    ),
    _s(
        "metrics_host",
        "metrics.host",
        "JQS_METRICS_HOST",
        parsers.listen_host,
        "0.0.0.0",
        "address the metrics endpoints listen on; 127.0.0.1 keeps them on this host",
    ),
    _s(
        "metrics_api_port",
        "metrics.api_port",
        "JQS_METRICS_API_PORT",
        parsers.integer(1, 65535),
        9092,
        "port of the API's metrics endpoint, served by gunicorn's master (never on the API's own port)",
    ),
    _s(
        "logging_level",
        "logging.level",
        "JQS_LOG_LEVEL",
        parsers.choice("debug", "info", "warning", "error"),
        "info",
        "log level",
    ),
    _s("logging_format", "logging.format", "JQS_LOG_FORMAT", parsers.choice("json", "text"), "json", "log format"),
    _s(
        "database_url",
        None,
        "JQS_DATABASE_URL",
        parsers.database_url,
        DEFAULT_DATABASE_URL,
        "postgres://user:pass@host:port/db or sqlite:///path; empty is an error",
    ),
    _s(
        "database_prepared_statements",
        None,
        "JQS_DATABASE_PREPARED_STATEMENTS",
        parsers.boolean,
        True,
        "prepare the hot statements on PostgreSQL; false behind a transaction-mode pooler without them",
    ),
    _s("secret_key", None, "JQS_SECRET_KEY", parsers.string, "", "Django secret key; required unless JQS_DEBUG=true"),
    _s("debug", None, "JQS_DEBUG", parsers.boolean, False, "development mode"),
    _s(
        "https",
        None,
        "JQS_HTTPS",
        parsers.boolean,
        False,
        "served over HTTPS by a TLS proxy: secure cookies, HSTS, X-Forwarded-Proto trusted",
    ),
    _s(
        "allowed_hosts",
        None,
        "JQS_ALLOWED_HOSTS",
        parsers.string_list,
        ("localhost", "127.0.0.1", "[::1]"),
        "comma-separated host names the API answers",
    ),
    _s(
        "api_open",
        None,
        "JQS_API_OPEN",
        parsers.boolean,
        False,
        "serve the API without tokens (development only; needs JQS_DEBUG)",
    ),
    _s(
        "max_payload_bytes",
        None,
        "JQS_MAX_PAYLOAD_BYTES",
        parsers.integer(1, 1024**3),
        1024 * 1024,
        "largest payload, as bytes of UTF-8 JSON",
    ),
    _s(
        "api_submit_rate",
        None,
        "JQS_API_SUBMIT_RATE",
        parsers.rate,
        "1200/min",
        "single submits per user (off: no limit)",
    ),
    _s(
        "api_batch_rate",
        None,
        "JQS_API_BATCH_RATE",
        parsers.rate,
        "12000/min",
        "jobs in batch submits per user (off: no limit)",
    ),
    _s(
        "auth_failure_limit",
        None,
        "JQS_AUTH_FAILURE_LIMIT",
        parsers.integer(1, 1_000_000),
        20,
        "failed logins (API token or admin password) per client address before 429",
    ),
    _s(
        "auth_failure_window",
        None,
        "JQS_AUTH_FAILURE_WINDOW",
        parsers.positive_duration,
        600.0,
        "window of JQS_AUTH_FAILURE_LIMIT, from the first failure",
    ),
    _s("email_host", None, "JQS_EMAIL_HOST", parsers.string, "", "SMTP host; the console backend when empty"),
    _s("email_port", None, "JQS_EMAIL_PORT", parsers.integer(1, 65535), 25, "SMTP port"),
    _s("email_user", None, "JQS_EMAIL_USER", parsers.string, "", "SMTP user"),
    _s("email_password", None, "JQS_EMAIL_PASSWORD", parsers.string, "", "SMTP password"),
    _s("email_use_tls", None, "JQS_EMAIL_USE_TLS", parsers.boolean, False, "STARTTLS to the SMTP server"),
    _s("email_from", None, "JQS_EMAIL_FROM", parsers.string, "zipline@localhost", "sender of send_email jobs"),
    _s(
        "webhook_allowed_networks",
        None,
        "JQS_WEBHOOK_ALLOWED_NETWORKS",
        parsers.networks,
        (),
        "networks webhooks may reach although private; a port narrows one (10.0.0.5:8443)",
    ),
    _s(
        "apps",
        "apps",
        "JQS_APPS",
        parsers.apps,
        (),
        "comma-separated Django apps to install (module paths); their processors modules load in the API and the workers",
    ),
)

# The table by attribute (parse_setting, load_config), by YAML place and its sections (the YAML reader).
BY_ATTRIBUTE = {s.attribute: s for s in SETTINGS}
BY_PLACE = {(s.section, s.key): s for s in SETTINGS if s.section}
SECTION_NAMES = {s.section for s in SETTINGS if s.section}
