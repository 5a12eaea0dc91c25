"""ZipLine's configuration: ``JQS_*`` environment variables over a YAML file (``JQS_CONFIG``) over defaults.

Every setting is declared once in :data:`SETTINGS`, with its YAML place, its variable, its parser and its
default; the README's configuration table is checked against this list by a test. A wrong value raises
:class:`ConfigError`, whose message is one line naming the setting and the value; the entry points turn it
into that line on stderr and exit status 2.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

import yaml

from zipline_site.allowlist import parse_entry as parse_allowed_network
from zipline_site.durations import MAX_DURATION, DurationError, parse_duration
from zipline_site.exit_codes import ExitCode
from zipline_site.sections import Config as Config  # built there; imported from here too

EXIT_CONFIG_ERROR = ExitCode.CONFIG
# The database when JQS_DATABASE_URL is unset: an SQLite file in the checkout (make run uses .local/'s).
DEFAULT_DATABASE_URL = f"sqlite:///{Path(__file__).resolve().parent.parent / 'zipline.sqlite3'}"


# The password of a URL: after "scheme://user:", up to the last "@" before a space (a password may hold
# "@", ":" or "/" unescaped; masking too much is better than showing a part).
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):\S*@")
_SECRET_SETTINGS = {"JQS_REDIS_PASSWORD", "JQS_EMAIL_PASSWORD", "JQS_SECRET_KEY"}


def mask_passwords(text: str) -> str:
    """``text`` with the password of every URL in it masked (``redis://:***@host``), for messages.

    A regular expression rather than a URL parser: the URLs in configuration errors are the ones no
    parser could take (a port out of range, a broken IPv6 address), and their passwords must not show.
    """
    return _URL_PASSWORD.sub(r"\1:***@", text)


def _url_password(text: str) -> str:
    """The password of the URL ``text`` as :func:`mask_passwords` sees it ("" for none)."""
    found = _URL_PASSWORD.match(text)
    return found.group(0)[len(found.group(1)) + 1 : -1] if found else ""


def _scrub(detail: str, raw: str) -> str:
    """``detail`` (a parser's complaint about ``raw``) without any piece of ``raw``'s password in the
    parts it quotes (``'...'``): a parser that split the URL elsewhere quotes pieces as ports or paths."""
    pieces = [piece for piece in re.split(r"[/?#@:]", _url_password(raw)) if piece]

    def scrub(quoted: re.Match[str]) -> str:
        text = quoted.group(0)
        for piece in pieces:
            text = text.replace(piece, "***")
        return text

    return re.sub(r"'[^']*'", scrub, detail) if pieces else detail


class ConfigError(Exception):
    """A configuration value ZipLine cannot use; the message names the setting and the value.

    Any password in a URL of the message is masked here, so no configuration error can print one.
    """

    def __init__(self, message: str) -> None:
        super().__init__(mask_passwords(message))


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected true or false")


_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]{1,18}")  # ASCII digits: int() would also take "٣" and "1_0"


def _integer(minimum: int, maximum: int | None = None) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        text = "" if isinstance(value, bool) else str(value).strip()
        if not _WHOLE_NUMBER.fullmatch(text):
            raise ValueError("expected a whole number" + ("" if len(text) <= 18 else " of at most 18 digits"))
        number = int(text)
        if number < minimum or (maximum is not None and number > maximum):
            bound = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
            raise ValueError(f"expected a whole number {bound}")
        return number

    return parse


def _duration(value: Any) -> float:
    try:
        seconds = parse_duration(value)
    except DurationError as exc:
        raise ValueError(str(exc)) from None
    if seconds > MAX_DURATION:
        raise ValueError("expected a duration of at most 10 years (87600h)")
    return seconds


def _positive_duration(value: Any) -> float:
    seconds = _duration(value)
    if seconds <= 0:
        raise ValueError("expected a duration above zero")
    return seconds


def _duration_at_least(minimum: float) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        seconds = _duration(value)
        if seconds < minimum:
            raise ValueError(f"expected a duration of at least {minimum:g}s")
        return seconds

    return parse


def _string(value: Any) -> str:
    if isinstance(value, (dict, list)):
        raise ValueError("expected a string")
    return "" if value is None else str(value)


def _choice(*options: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return text

    return parse


def _string_list(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else str(value).split(",")
    return tuple(str(item).strip() for item in items if str(item).strip())


def _networks(value: Any) -> tuple[str, ...]:
    networks = _string_list(value)
    for network in networks:
        parse_allowed_network(network)  # raises ValueError saying what is expected
    return networks


_MODULE_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def _module_exists(path: str) -> bool:
    """Whether ``path`` names a module on ``sys.path``, found without importing anything: the settings
    are still loading, and a package that imports its models would fail here."""
    first, *rest = path.split(".")
    try:
        spec = importlib.util.find_spec(first)
    except ValueError:  # a module already loaded without a spec (__main__)
        return False
    name = first
    for part in rest:
        if spec is None or not spec.submodule_search_locations:
            return False
        name = f"{name}.{part}"
        spec = importlib.machinery.PathFinder.find_spec(name, list(spec.submodule_search_locations))
    return spec is not None


def _apps(value: Any) -> tuple[str, ...]:
    """Module paths of Django apps to install; each must exist, so a typo stops the process here."""
    if isinstance(value, dict):
        raise ValueError("expected a list of module paths")
    apps = _string_list(value)
    for app in apps:
        if not _MODULE_PATH.fullmatch(app):
            raise ValueError(f"{app!r} is not a module path (expected e.g. myapp or mycompany.jobs)")
        if not _module_exists(app):
            raise ValueError(f"no module named {app!r} (put its folder on PYTHONPATH or next to manage.py)")
    return tuple(dict.fromkeys(apps))


def _network_address(text: str, example: str) -> SplitResult:
    """The URL's parts; refuses one whose host or port could not be used (urlsplit checks only when asked).

    A password holding "/", "?" or "#" ends the URL's address before its "@" (the URL then has no
    credentials at all), and every later complaint would quote a piece of it: refused first, quoting nothing.
    """
    secret = _url_password(text)
    if secret and any(c in secret for c in "/?#") and "@" not in urlsplit(text).netloc:
        raise ValueError('the password holds "/", "?" or "#": percent-encode it (%2F, %3F, %23)')
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError as exc:
        raise ValueError(f"{exc} (expected e.g. {example})") from None
    if not parts.hostname:
        raise ValueError(f"expected a host (e.g. {example})")
    return parts


def _redis_url(value: Any) -> str:
    text = _string(value).strip()
    if text and not text.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("expected a redis:// or rediss:// URL")
    if text.startswith(("redis://", "rediss://")):
        database = _network_address(text, "redis://127.0.0.1:6379/0").path.strip("/")
        if database and not re.fullmatch(r"[0-9]{1,5}", database):
            raise ValueError(f"{database!r} is not a database number (expected e.g. redis://127.0.0.1:6379/0)")
    return text


def _database_url(value: Any) -> str:
    text = _string(value).strip()
    if not text:  # unset takes the default; empty is a mistake (a variable set from nothing)
        raise ValueError("expected a postgres:// or sqlite:/// URL (unset it for the default SQLite file)")
    if not text.startswith(("postgres://", "postgresql://", "sqlite:///")):
        raise ValueError("expected a postgres:// or sqlite:/// URL")
    if text.startswith("sqlite:///") and not text.removeprefix("sqlite:///").strip("/"):
        raise ValueError("expected a file after sqlite:/// (e.g. sqlite:///zipline.sqlite3)")
    if text.startswith(("postgres://", "postgresql://")):
        _network_address(text, "postgres://user@127.0.0.1:5432/zipline")
    return text


def _url_path(value: Any) -> str:
    text = _string(value).strip()
    if not text.startswith("/") or any(c.isspace() or c in "?#" for c in text):
        raise ValueError("expected a path starting with / (e.g. /metrics)")
    return text


_HOST_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")


def _listen_host(value: Any) -> str:
    """An address to listen on: an IP address (``0.0.0.0``, ``::`` for every interface) or a host name."""
    text = _string(value).strip()
    try:
        return str(ipaddress.ip_address(text.removeprefix("[").removesuffix("]")))
    except ValueError:
        pass
    if not _HOST_NAME.fullmatch(text) or len(text) > 253:
        raise ValueError("expected an IP address or a host name to listen on (e.g. 127.0.0.1, or 0.0.0.0 for all)")
    return text


def _key_prefix(value: Any) -> str:
    text = _string(value).strip()
    if not text or any(c in text for c in "{} \t\n"):
        raise ValueError("expected a non-empty prefix without braces or spaces")
    return text


_RATE = re.compile(r"([0-9]{1,9})/(s|sec|second|m|min|minute|h|hour|d|day)")


def _rate(value: Any) -> str | None:
    """A rate limit as DRF writes it (``1200/min``), or None for ``off``."""
    text = _string(value).strip().lower()
    if text == "off":
        return None
    match = _RATE.fullmatch(text)
    if not match or int(match.group(1)) < 1:
        raise ValueError("expected a rate such as 1200/min (per s, min, h or day), or off")
    return text


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
    _s("server_host", "server.host", "JQS_SERVER_HOST", _string, "0.0.0.0", "address the API listens on"),
    _s("server_port", "server.port", "JQS_SERVER_PORT", _integer(1, 65535), 8080, "port the API listens on"),
    _s("grpc_port", "server.grpc_port", "JQS_SERVER_GRPC_PORT", _integer(1, 65535), 9090, "reserved for a gRPC API"),
    _s("redis_host", "redis.host", "JQS_REDIS_HOST", _string, "localhost", "Redis host"),
    _s("redis_port", "redis.port", "JQS_REDIS_PORT", _integer(1, 65535), 6379, "Redis port"),
    _s("redis_password", "redis.password", "JQS_REDIS_PASSWORD", _string, "", "Redis password"),
    _s("redis_database", "redis.database", "JQS_REDIS_DATABASE", _integer(0, 15), 0, "Redis database number"),
    _s(
        "redis_url",
        "redis.url",
        "JQS_REDIS_URL",
        _redis_url,
        "",
        "redis:// or rediss:// URL; overrides host, port, password, database",
    ),
    _s(
        "redis_require_noeviction",
        "redis.require_noeviction",
        "JQS_REDIS_REQUIRE_NOEVICTION",
        _boolean,
        False,
        "refuse to start when Redis may evict keys (maxmemory-policy other than noeviction)",
    ),
    _s(
        "redis_key_prefix",
        "redis.key_prefix",
        "JQS_REDIS_KEY_PREFIX",
        _key_prefix,
        "zipline",
        "prefix of every Redis key",
    ),
    _s(
        "worker_count",
        "worker.count",
        "JQS_WORKER_COUNT",
        _integer(1, 256),
        4,
        "worker processes started by runworkers",
    ),
    _s(
        "worker_max_concurrency",
        "worker.max_concurrency",
        "JQS_WORKER_MAX_CONCURRENCY",
        _integer(1, 100000),
        100,
        "jobs running at once, over all worker processes",
    ),
    _s(
        "worker_poll_interval",
        "worker.poll_interval",
        "JQS_WORKER_POLL_INTERVAL",
        _positive_duration,
        1.0,
        "longest wait of an idle worker on Redis",
    ),
    _s(
        "worker_job_timeout",
        "worker.job_timeout",
        "JQS_WORKER_JOB_TIMEOUT",
        _positive_duration,
        300.0,
        "timeout of a job that sets none",
    ),
    _s(
        "worker_shutdown_timeout",
        "worker.shutdown_timeout",
        "JQS_WORKER_SHUTDOWN_TIMEOUT",
        _duration,
        30.0,
        "grace for running jobs on SIGTERM",
    ),
    _s(
        "worker_lease_ttl",
        "worker.lease_ttl",
        "JQS_WORKER_LEASE_TTL",
        _duration_at_least(1.0),  # renewed from a 0.1 s tick over the network: shorter ones expire while renewed
        30.0,
        "lease of a running job, renewed every third of it",
    ),
    _s(
        "worker_kill_grace",
        "worker.kill_grace",
        "JQS_WORKER_KILL_GRACE",
        _duration,
        5.0,
        "time past a job's timeout before its process is replaced",
    ),
    _s(
        "worker_max_jobs",
        "worker.max_jobs",
        "JQS_WORKER_MAX_JOBS",
        _integer(0, 1_000_000_000),
        0,
        "recycle a worker process after this many jobs (0: never)",
    ),
    _s(
        "scheduler_enabled",
        "scheduler.enabled",
        "JQS_SCHEDULER_ENABLED",
        _boolean,
        True,
        "whether make run starts the scheduler",
    ),
    _s(
        "scheduler_poll_interval",
        "scheduler.poll_interval",
        "JQS_SCHEDULER_POLL_INTERVAL",
        _positive_duration,
        30.0,
        "longest sleep of the scheduler",
    ),
    _s(
        "scheduler_batch_size",
        "scheduler.batch_size",
        "JQS_SCHEDULER_BATCH_SIZE",
        _integer(1, 100000),
        100,
        "jobs moved per scheduler step",
    ),
    _s(
        "scheduler_reclaim_interval",
        "scheduler.reclaim_interval",
        "JQS_SCHEDULER_RECLAIM_INTERVAL",
        _positive_duration,
        5.0,
        "how often expired leases are reclaimed",
    ),
    _s(
        "scheduler_reconcile_grace",
        "scheduler.reconcile_grace",
        "JQS_SCHEDULER_RECONCILE_GRACE",
        _duration,
        10.0,
        "age of a pending row missing from Redis before it is pushed again",
    ),
    _s(
        "retention_completed",
        "scheduler.retention_completed",
        "JQS_RETENTION_COMPLETED",
        _positive_duration,
        7 * 86400.0,
        "age at which completed, cancelled and expired jobs are deleted",
    ),
    _s(
        "retention_failed",
        "scheduler.retention_failed",
        "JQS_RETENTION_FAILED",
        _positive_duration,
        30 * 86400.0,
        "age at which failed jobs are deleted",
    ),
    _s("metrics_enabled", "metrics.enabled", "JQS_METRICS_ENABLED", _boolean, True, "serve Prometheus metrics"),
    _s(
        "metrics_port",
        "metrics.port",
        "JQS_METRICS_PORT",
        _integer(1, 65535),
        9091,
        "port of the workers' metrics endpoint",
    ),
    _s("metrics_path", "metrics.path", "JQS_METRICS_PATH", _url_path, "/metrics", "path of the metrics endpoint"),
    _s(
        "metrics_host",
        "metrics.host",
        "JQS_METRICS_HOST",
        _listen_host,
        "0.0.0.0",
        "address the metrics endpoints listen on; 127.0.0.1 keeps them on this host",
    ),
    _s(
        "metrics_api_port",
        "metrics.api_port",
        "JQS_METRICS_API_PORT",
        _integer(1, 65535),
        9092,
        "port of the API's metrics endpoint, served by gunicorn's master (never on the API's own port)",
    ),
    _s(
        "logging_level",
        "logging.level",
        "JQS_LOG_LEVEL",
        _choice("debug", "info", "warning", "error"),
        "info",
        "log level",
    ),
    _s("logging_format", "logging.format", "JQS_LOG_FORMAT", _choice("json", "text"), "json", "log format"),
    _s(
        "database_url",
        None,
        "JQS_DATABASE_URL",
        _database_url,
        DEFAULT_DATABASE_URL,
        "postgres://user:pass@host:port/db or sqlite:///path; empty is an error",
    ),
    _s(
        "database_prepared_statements",
        None,
        "JQS_DATABASE_PREPARED_STATEMENTS",
        _boolean,
        True,
        "prepare the hot statements on PostgreSQL; false behind a transaction-mode pooler without them",
    ),
    _s("secret_key", None, "JQS_SECRET_KEY", _string, "", "Django secret key; required unless JQS_DEBUG=true"),
    _s("debug", None, "JQS_DEBUG", _boolean, False, "development mode"),
    _s(
        "https",
        None,
        "JQS_HTTPS",
        _boolean,
        False,
        "served over HTTPS by a TLS proxy: secure cookies, HSTS, X-Forwarded-Proto trusted",
    ),
    _s(
        "allowed_hosts",
        None,
        "JQS_ALLOWED_HOSTS",
        _string_list,
        ("localhost", "127.0.0.1", "[::1]"),
        "comma-separated host names the API answers",
    ),
    _s(
        "api_open",
        None,
        "JQS_API_OPEN",
        _boolean,
        False,
        "serve the API without tokens (development only; needs JQS_DEBUG)",
    ),
    _s(
        "max_payload_bytes",
        None,
        "JQS_MAX_PAYLOAD_BYTES",
        _integer(1, 1024**3),
        1024 * 1024,
        "largest payload, as bytes of UTF-8 JSON",
    ),
    _s("api_submit_rate", None, "JQS_API_SUBMIT_RATE", _rate, "1200/min", "single submits per user (off: no limit)"),
    _s(
        "api_batch_rate",
        None,
        "JQS_API_BATCH_RATE",
        _rate,
        "12000/min",
        "jobs in batch submits per user (off: no limit)",
    ),
    _s(
        "auth_failure_limit",
        None,
        "JQS_AUTH_FAILURE_LIMIT",
        _integer(1, 1_000_000),
        20,
        "failed logins (API token or admin password) per client address before 429",
    ),
    _s(
        "auth_failure_window",
        None,
        "JQS_AUTH_FAILURE_WINDOW",
        _positive_duration,
        600.0,
        "window of JQS_AUTH_FAILURE_LIMIT, from the first failure",
    ),
    _s("email_host", None, "JQS_EMAIL_HOST", _string, "", "SMTP host; the console backend when empty"),
    _s("email_port", None, "JQS_EMAIL_PORT", _integer(1, 65535), 25, "SMTP port"),
    _s("email_user", None, "JQS_EMAIL_USER", _string, "", "SMTP user"),
    _s("email_password", None, "JQS_EMAIL_PASSWORD", _string, "", "SMTP password"),
    _s("email_use_tls", None, "JQS_EMAIL_USE_TLS", _boolean, False, "STARTTLS to the SMTP server"),
    _s("email_from", None, "JQS_EMAIL_FROM", _string, "zipline@localhost", "sender of send_email jobs"),
    _s(
        "webhook_allowed_networks",
        None,
        "JQS_WEBHOOK_ALLOWED_NETWORKS",
        _networks,
        (),
        "networks webhooks may reach although private; a port narrows one (10.0.0.5:8443)",
    ),
    _s(
        "apps",
        "apps",
        "JQS_APPS",
        _apps,
        (),
        "comma-separated Django apps to install (module paths); their processors modules load in the API and the workers",
    ),
)

_BY_ATTRIBUTE = {s.attribute: s for s in SETTINGS}
_BY_PLACE = {(s.section, s.key): s for s in SETTINGS if s.section}
_SECTIONS = {s.section for s in SETTINGS if s.section}


def _read_yaml(path: str) -> dict[str, Any]:
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file JQS_CONFIG={path!r}: no such file")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" at line {line + 1}" if line is not None else ""
        raise ConfigError(f"config file {path!r}: not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path!r}: expected a mapping of sections at the top")
    found: dict[str, Any] = {}
    for section, body in data.items():
        if section not in _SECTIONS:
            raise ConfigError(f"config file {path!r}: unknown section {section!r}")
        top_level = _BY_PLACE.get((section, None))
        if top_level is not None:  # a setting of its own at the top (apps: [...]), not a section
            if body is not None:
                found[top_level.attribute] = (body, section)
            continue
        if body is None:
            continue
        if not isinstance(body, dict):
            raise ConfigError(f"config file {path!r}: section {section!r} must be a mapping")
        for key, value in body.items():
            setting = _BY_PLACE.get((section, key))
            if setting is None:
                raise ConfigError(f"config file {path!r}: unknown key {section}.{key}")
            found[setting.attribute] = (value, f"{section}.{key}")
    return found


def parse_setting(attribute: str, value: Any) -> Any:
    """``value`` parsed as the setting ``attribute`` takes it (for a flag that overrides it).

    Raises ValueError saying what is expected, as for the variable or the YAML key.
    """
    return _BY_ATTRIBUTE[attribute].parse(value)


def load_config(environ: Mapping[str, str] | None = None, config_file: str | None = None) -> Config:
    """Resolve every setting: environment over file over defaults. Raises :class:`ConfigError`."""
    env = os.environ if environ is None else environ
    path = config_file or env.get("JQS_CONFIG") or None
    from_file = _read_yaml(path) if path else {}
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.env in env:
            raw, origin = env[setting.env], setting.env
        elif setting.attribute in from_file:
            raw, origin = from_file[setting.attribute]
        else:
            values[setting.attribute] = setting.default
            continue
        try:
            values[setting.attribute] = setting.parse(raw)
        except ValueError as exc:
            if setting.env in _SECRET_SETTINGS:
                raise ConfigError(f"{origin}='***': {exc}") from None
            if isinstance(raw, str):
                raise ConfigError(f"{origin}={mask_passwords(raw)!r}: {_scrub(str(exc), raw)}") from None
            raise ConfigError(f"{origin}={raw!r}: {exc}") from None
    if values["api_open"] and not values["debug"]:
        raise ConfigError("JQS_API_OPEN=true needs JQS_DEBUG=true: an open API is for local development only")
    return Config(values=values, source_file=path)


def redis_url(config: Config) -> str:
    """The Redis URL the config names, built from the parts unless ``JQS_REDIS_URL`` is set."""
    section = config.redis
    if section.url:
        return section.url
    from urllib.parse import quote

    auth = f":{quote(section.password, safe='')}@" if section.password else ""
    host = f"[{section.host}]" if ":" in section.host else section.host  # IPv6
    return f"redis://{auth}{host}:{section.port}/{section.database}"


def server_address(config: Config) -> str:
    """``host:port`` the API listens on (an IPv6 host in brackets), as gunicorn and runserver take it."""
    host = config.server.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{config.server.port}"


def config_file_from_argv(argv: list[str]) -> str | None:
    """The value of ``--config`` in a command line, so it applies before Django reads its settings."""
    for index, arg in enumerate(argv):
        if arg == "--config" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None
