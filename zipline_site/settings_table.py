"""The table of every ``JQS_*`` setting: its attribute, YAML place, variable, parser, default and help.

Declared once here (the workers', limits', scheduler's, metrics' and logging rows in
:mod:`zipline_site.settings_table_processes`); :mod:`zipline_site.sections` gives each value a type and a place, and tests check the
README's configuration table against this one.
"""

from __future__ import annotations

from pathlib import Path

from zipline_site import parsers
from zipline_site.setting import Setting, row
from zipline_site.settings_table_processes import PROCESS_SETTINGS

# The database when JQS_DATABASE_URL is unset: an SQLite file in the checkout (make run uses .local/'s).
DEFAULT_DATABASE_URL = f"sqlite:///{Path(__file__).resolve().parent.parent / 'zipline.sqlite3'}"


SETTINGS: tuple[Setting, ...] = (
    row(
        "server_host",
        "server.host",
        "JQS_SERVER_HOST",
        parsers.string,
        "0.0.0.0",
        "address the APIs (REST and gRPC) listen on",
    ),
    row("server_port", "server.port", "JQS_SERVER_PORT", parsers.integer(1, 65535), 8080, "port the API listens on"),
    row(
        "grpc_port",
        "server.grpc_port",
        "JQS_SERVER_GRPC_PORT",
        parsers.integer(1, 65535),
        9090,
        "port the gRPC API (manage.py rungrpc) listens on",
    ),
    row("redis_host", "redis.host", "JQS_REDIS_HOST", parsers.string, "localhost", "Redis host"),
    row("redis_port", "redis.port", "JQS_REDIS_PORT", parsers.integer(1, 65535), 6379, "Redis port"),
    row("redis_password", "redis.password", "JQS_REDIS_PASSWORD", parsers.string, "", "Redis password"),
    row("redis_database", "redis.database", "JQS_REDIS_DATABASE", parsers.integer(0, 15), 0, "Redis database number"),
    row(
        "redis_url",
        "redis.url",
        "JQS_REDIS_URL",
        parsers.redis_url,
        "",
        "redis:// or rediss:// URL (overrides host, port, password, database); redis+cluster://host:port,... a Redis Cluster",
    ),
    row(
        "redis_cluster",
        "redis.cluster",
        "JQS_REDIS_CLUSTER",
        parsers.boolean,
        False,
        "true: the Redis named is a node of a Redis Cluster, the others are found from it (see docs/operations.md)",
    ),
    row(
        "redis_sentinels",
        "redis.sentinels",
        "JQS_REDIS_SENTINELS",
        parsers.sentinels,
        "",
        "host:port,host:port of Redis Sentinels; set, the master comes from them (see docs/operations.md)",
    ),
    row(
        "redis_sentinel_master",
        "redis.sentinel_master",
        "JQS_REDIS_SENTINEL_MASTER",
        parsers.string,
        "mymaster",
        "the master's name the sentinels monitor",
    ),
    row(
        "redis_sentinel_password",
        "redis.sentinel_password",
        "JQS_REDIS_SENTINEL_PASSWORD",
        parsers.string,
        "",
        "the sentinels' own password (the master's is JQS_REDIS_PASSWORD or the URL's)",
    ),
    row(
        "redis_require_noeviction",
        "redis.require_noeviction",
        "JQS_REDIS_REQUIRE_NOEVICTION",
        parsers.boolean,
        False,
        "refuse to start when Redis may evict keys (maxmemory-policy other than noeviction)",
    ),
    row(
        "redis_key_prefix",
        "redis.key_prefix",
        "JQS_REDIS_KEY_PREFIX",
        parsers.key_prefix,
        "zipline",
        "prefix of every Redis key",
    ),
    *PROCESS_SETTINGS,
    row(
        "kafka_bootstrap_servers",
        "kafka.bootstrap_servers",
        "JQS_KAFKA_BOOTSTRAP_SERVERS",
        parsers.host_ports,
        (),
        "host:port,host:port of Kafka brokers runkafka consumes from; runkafka refuses to start without them",
    ),
    row(
        "kafka_topic", "kafka.topic", "JQS_KAFKA_TOPIC", parsers.kafka_topic, "zipline-jobs", "topic of job submissions"
    ),
    row(
        "kafka_dead_letter_topic",
        "kafka.dead_letter_topic",
        "JQS_KAFKA_DEAD_LETTER_TOPIC",
        parsers.kafka_topic,
        "zipline-jobs-dead-letter",
        "topic a refused submission is copied to, with the reason in its headers",
    ),
    row("kafka_group", "kafka.group", "JQS_KAFKA_GROUP", parsers.string, "zipline", "runkafka's consumer group"),
    row(
        "kafka_session_timeout",
        "kafka.session_timeout",
        "JQS_KAFKA_SESSION_TIMEOUT",
        parsers.duration_at_least(1.0),
        10.0,
        "a runkafka process silent this long leaves the group; its partitions go to the others",
    ),
    row(
        "database_url",
        None,
        "JQS_DATABASE_URL",
        parsers.database_url,
        DEFAULT_DATABASE_URL,
        "postgres://user:pass@host:port/db or sqlite:///path; empty is an error",
    ),
    row(
        "database_prepared_statements",
        None,
        "JQS_DATABASE_PREPARED_STATEMENTS",
        parsers.boolean,
        True,
        "prepare the hot statements on PostgreSQL; false behind a transaction-mode pooler without them",
    ),
    row("secret_key", None, "JQS_SECRET_KEY", parsers.string, "", "Django secret key; required unless JQS_DEBUG=true"),
    row("debug", None, "JQS_DEBUG", parsers.boolean, False, "development mode"),
    row(
        "https",
        None,
        "JQS_HTTPS",
        parsers.boolean,
        False,
        "served over HTTPS by a TLS proxy: secure cookies, HSTS, X-Forwarded-Proto trusted",
    ),
    row(
        "allowed_hosts",
        None,
        "JQS_ALLOWED_HOSTS",
        parsers.string_list,
        ("localhost", "127.0.0.1", "[::1]"),
        "comma-separated host names the API answers",
    ),
    row(
        "api_open",
        None,
        "JQS_API_OPEN",
        parsers.boolean,
        False,
        "serve the API without tokens (development only; needs JQS_DEBUG)",
    ),
    row(
        "max_payload_bytes",
        None,
        "JQS_MAX_PAYLOAD_BYTES",
        parsers.integer(1, 1024**3),
        1024 * 1024,
        "largest payload, as bytes of UTF-8 JSON",
    ),
    row(
        "api_submit_rate",
        None,
        "JQS_API_SUBMIT_RATE",
        parsers.rate,
        "1200/min",
        "single submits per user (off: no limit)",
    ),
    row(
        "api_batch_rate",
        None,
        "JQS_API_BATCH_RATE",
        parsers.rate,
        "12000/min",
        "jobs in batch submits, workflows and batches per user (off: no limit)",
    ),
    row(
        "auth_failure_limit",
        None,
        "JQS_AUTH_FAILURE_LIMIT",
        parsers.integer(1, 1_000_000),
        20,
        "failed logins (API token or admin password) per client address before 429",
    ),
    row(
        "auth_failure_window",
        None,
        "JQS_AUTH_FAILURE_WINDOW",
        parsers.positive_duration,
        600.0,
        "window of JQS_AUTH_FAILURE_LIMIT, from the first failure",
    ),
    row("email_host", None, "JQS_EMAIL_HOST", parsers.string, "", "SMTP host; the console backend when empty"),
    row("email_port", None, "JQS_EMAIL_PORT", parsers.integer(1, 65535), 25, "SMTP port"),
    row("email_user", None, "JQS_EMAIL_USER", parsers.string, "", "SMTP user"),
    row("email_password", None, "JQS_EMAIL_PASSWORD", parsers.string, "", "SMTP password"),
    row("email_use_tls", None, "JQS_EMAIL_USE_TLS", parsers.boolean, False, "STARTTLS to the SMTP server"),
    row("email_from", None, "JQS_EMAIL_FROM", parsers.string, "zipline@localhost", "sender of send_email jobs"),
    row(
        "webhook_allowed_networks",
        None,
        "JQS_WEBHOOK_ALLOWED_NETWORKS",
        parsers.networks,
        (),
        "networks webhooks may reach although private; a port narrows one (10.0.0.5:8443)",
    ),
    row(
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
