"""The resolved configuration as typed, frozen sections (``config.worker.lease_ttl``), one per part of ZipLine.

The values come from :data:`zipline_site.settings_table.SETTINGS` (the one table of every setting, its parser
and its default); a section only gives them a type and a place. A field takes the setting ``<prefix>_<field>``,
or the setting named in its metadata; a test checks that every setting lands in exactly one field. Callers are
handed the section they need rather than reading the whole configuration.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar


def _from(setting: str) -> Any:
    """A field whose setting is not ``<prefix>_<field>``."""
    return field(metadata={"setting": setting})


@dataclass(frozen=True)
class ServerConfig:
    PREFIX: ClassVar[str] = "server"
    host: str
    port: int
    grpc_port: int = _from("grpc_port")


@dataclass(frozen=True)
class RedisConfig:
    PREFIX: ClassVar[str] = "redis"
    host: str
    port: int
    password: str = field(repr=False)
    database: int
    url: str
    cluster: bool
    sentinels: str
    sentinel_master: str
    sentinel_password: str = field(repr=False)
    require_noeviction: bool
    key_prefix: str


@dataclass(frozen=True)
class WorkerConfig:
    PREFIX: ClassVar[str] = "worker"
    count: int
    max_concurrency: int
    poll_interval: float
    job_timeout: float
    shutdown_timeout: float
    lease_ttl: float
    kill_grace: float
    max_jobs: int


@dataclass(frozen=True)
class LimitsConfig:
    """Every queue's limits unless its own row sets them (docs/flow-control.md); 0 or "" is none."""

    PREFIX: ClassVar[str] = "limits"
    queue_concurrency: int
    queue_rate: str
    queue_burst: int
    group_concurrency: int
    group_rate: str
    group_burst: int


@dataclass(frozen=True)
class SchedulerConfig:
    PREFIX: ClassVar[str] = "scheduler"
    enabled: bool
    poll_interval: float
    batch_size: int
    reclaim_interval: float
    reconcile_grace: float
    retention_completed: float = _from("retention_completed")
    retention_failed: float = _from("retention_failed")


@dataclass(frozen=True)
class MetricsConfig:
    PREFIX: ClassVar[str] = "metrics"
    enabled: bool
    port: int
    path: str
    host: str
    api_port: int
    group_labels: bool


@dataclass(frozen=True)
class KafkaConfig:
    """``manage.py runkafka``: where job submissions come from and where refused ones go (docs/kafka.md)."""

    PREFIX: ClassVar[str] = "kafka"
    bootstrap_servers: tuple[str, ...]
    topic: str
    dead_letter_topic: str
    group: str
    session_timeout: float


@dataclass(frozen=True)
class LoggingConfig:
    PREFIX: ClassVar[str] = "logging"
    level: str
    format: str


@dataclass(frozen=True)
class DatabaseConfig:
    PREFIX: ClassVar[str] = "database"
    url: str
    prepared_statements: bool


@dataclass(frozen=True)
class SecurityConfig:
    """Django's secret, the hosts it answers, HTTPS, and who may log in how often."""

    PREFIX: ClassVar[str] = ""
    secret_key: str = field(repr=False)
    debug: bool
    https: bool
    allowed_hosts: tuple[str, ...]
    auth_failure_limit: int
    auth_failure_window: float


@dataclass(frozen=True)
class ApiConfig:
    PREFIX: ClassVar[str] = "api"
    open: bool
    submit_rate: str | None
    batch_rate: str | None
    max_payload_bytes: int = _from("max_payload_bytes")


@dataclass(frozen=True)
class EmailConfig:
    PREFIX: ClassVar[str] = "email"
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    use_tls: bool
    sender: str = _from("email_from")


@dataclass(frozen=True)
class WebhookConfig:
    PREFIX: ClassVar[str] = "webhook"
    allowed_networks: tuple[str, ...]


@dataclass(frozen=True)
class AppsConfig:
    """The user's Django apps (``JQS_APPS``), installed beside ZipLine's."""

    PREFIX: ClassVar[str] = ""
    installed: tuple[str, ...] = _from("apps")


SECTIONS: dict[str, type] = {
    "server": ServerConfig,
    "redis": RedisConfig,
    "worker": WorkerConfig,
    "limits": LimitsConfig,
    "scheduler": SchedulerConfig,
    "metrics": MetricsConfig,
    "kafka": KafkaConfig,
    "logging": LoggingConfig,
    "database": DatabaseConfig,
    "security": SecurityConfig,
    "api": ApiConfig,
    "email": EmailConfig,
    "webhook": WebhookConfig,
    "apps": AppsConfig,
}
"""Each section's attribute on :class:`Config` and its class."""

S = TypeVar("S")


def setting_of(section: type, field_name: str) -> str:
    """The attribute in :data:`SETTINGS` that fills ``section``'s field ``field_name``."""
    declared = {f.name: f for f in dataclasses.fields(section)}[field_name]
    prefix = getattr(section, "PREFIX", "")
    return str(declared.metadata.get("setting") or (f"{prefix}_{field_name}" if prefix else field_name))


def build_section(section: type[S], values: Mapping[str, Any]) -> S:
    """``section`` filled from the resolved ``values`` (a KeyError names a setting the table lacks)."""
    return section(**{f.name: values[setting_of(section, f.name)] for f in dataclasses.fields(section)})  # type: ignore[arg-type]


@dataclass(frozen=True)
class Config:
    """The resolved configuration: its values by setting, the file they came from, and the typed sections.

    The sections are built once, here, from ``values``; ``dataclasses.replace(config, values=...)`` (the
    tests' ``override_zipline``) builds them again.
    """

    values: Mapping[str, Any]
    source_file: str | None = None
    server: ServerConfig = field(init=False, repr=False)
    redis: RedisConfig = field(init=False, repr=False)
    worker: WorkerConfig = field(init=False, repr=False)
    limits: LimitsConfig = field(init=False, repr=False)
    scheduler: SchedulerConfig = field(init=False, repr=False)
    metrics: MetricsConfig = field(init=False, repr=False)
    kafka: KafkaConfig = field(init=False, repr=False)
    logging: LoggingConfig = field(init=False, repr=False)
    database: DatabaseConfig = field(init=False, repr=False)
    security: SecurityConfig = field(init=False, repr=False)
    api: ApiConfig = field(init=False, repr=False)
    email: EmailConfig = field(init=False, repr=False)
    webhook: WebhookConfig = field(init=False, repr=False)
    apps: AppsConfig = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name, section in SECTIONS.items():
            object.__setattr__(self, name, build_section(section, self.values))
