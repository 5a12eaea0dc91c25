"""The parsers of setting values: each takes a value from a variable or the YAML file and returns it typed.

A parser raises ValueError saying what is expected; :func:`zipline_site.config.load_config` adds the
setting's name and the value to make the one-line :class:`~zipline_site.config_errors.ConfigError`.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import ipaddress
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import SplitResult, urlsplit

from zipline_site.allowlist import parse_entry as parse_allowed_network
from zipline_site.config_errors import url_password
from zipline_site.durations import MAX_DURATION, DurationError, format_duration, parse_duration

_YEAR = 365 * 86400.0


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected true or false")


_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]{1,18}")  # ASCII digits: int() would also take "٣" and "1_0"


def integer(minimum: int, maximum: int | None = None) -> Callable[[Any], int]:
    """A parser of whole numbers from ``minimum`` (to ``maximum``)."""

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


def duration(value: Any) -> float:
    """A Go-style duration (or a number of seconds) of at most :data:`~zipline_site.durations.MAX_DURATION`."""
    try:
        seconds = parse_duration(value)
    except DurationError as exc:
        raise ValueError(str(exc)) from None
    if seconds > MAX_DURATION:
        longest = f"{MAX_DURATION / _YEAR:g} years ({format_duration(MAX_DURATION)})"
        raise ValueError(f"expected a duration of at most {longest}")
    return seconds


def positive_duration(value: Any) -> float:
    seconds = duration(value)
    if seconds <= 0:
        raise ValueError("expected a duration above zero")
    return seconds


def duration_at_least(minimum: float) -> Callable[[Any], float]:
    """A parser of durations of at least ``minimum`` seconds."""

    def parse(value: Any) -> float:
        seconds = duration(value)
        if seconds < minimum:
            raise ValueError(f"expected a duration of at least {minimum:g}s")
        return seconds

    return parse


def string(value: Any) -> str:
    if isinstance(value, (dict, list)):
        raise ValueError("expected a string")
    return "" if value is None else str(value)


def choice(*options: str) -> Callable[[Any], str]:
    """A parser that takes one of ``options`` (in any case)."""

    def parse(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return text

    return parse


def string_list(value: Any) -> tuple[str, ...]:
    """A YAML list, or a comma-separated string; blank items are dropped."""
    items = value if isinstance(value, list) else str(value).split(",")
    return tuple(str(item).strip() for item in items if str(item).strip())


def networks(value: Any) -> tuple[str, ...]:
    found = string_list(value)
    for network in found:
        parse_allowed_network(network)  # raises ValueError saying what is expected
    return found


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


def apps(value: Any) -> tuple[str, ...]:
    """Module paths of Django apps to install; each must exist, so a typo stops the process here."""
    if isinstance(value, dict):
        raise ValueError("expected a list of module paths")
    found = string_list(value)
    for app in found:
        if not _MODULE_PATH.fullmatch(app):
            raise ValueError(f"{app!r} is not a module path (expected e.g. myapp or mycompany.jobs)")
        if not _module_exists(app):
            raise ValueError(f"no module named {app!r} (put its folder on PYTHONPATH or next to manage.py)")
    return tuple(dict.fromkeys(found))


def _network_address(text: str, example: str) -> SplitResult:
    """The URL's parts; refuses one whose host or port could not be used (urlsplit checks only when asked).

    A password holding "/", "?" or "#" ends the URL's address before its "@" (the URL then has no
    credentials at all), and every later complaint would quote a piece of it: refused first, quoting nothing.
    """
    secret = url_password(text)
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


CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")


def redis_url(value: Any) -> str:
    text = string(value).strip()
    if text.startswith(CLUSTER_SCHEMES):
        return cluster_url(text)
    if text and not text.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("expected a redis://, rediss:// or redis+cluster:// URL")
    if text.startswith(("redis://", "rediss://")):
        database = _network_address(text, "redis://127.0.0.1:6379/0").path.strip("/")
        if database and not re.fullmatch(r"[0-9]{1,5}", database):
            raise ValueError(f"{database!r} is not a database number (expected e.g. redis://127.0.0.1:6379/0)")
    return text


def cluster_url(text: str) -> str:
    """``redis+cluster://[user:password@]host:port[,host:port...][/0]``: nodes of one Redis Cluster, each
    address checked; a cluster has only database 0."""
    example = "redis+cluster://10.0.0.5:7000,10.0.0.6:7000"
    rest = text.split("://", 1)[1]
    auth, _, hosts = rest.rpartition("@")
    hosts, _, database = hosts.partition("/")
    if database.strip("/") not in ("", "0"):
        raise ValueError(f"a Redis Cluster has only database 0, not {database.strip('/')!r}")
    if not hosts:
        raise ValueError(f"expected the address of at least one node (e.g. {example})")
    for item in hosts.split(","):
        _network_address(f"redis://{auth + '@' if auth else ''}{item.strip()}", example)
        if urlsplit(f"redis://{item.strip()}").port is None:
            raise ValueError(f"{item.strip()!r} is not host:port (expected e.g. {example})")
    return text


def sentinels(value: Any) -> str:
    """``host:port,host:port``: each sentinel's address checked (an IPv6 host in brackets)."""
    text = string(value).strip()
    for item in filter(None, (part.strip() for part in text.split(","))):
        host, _, port = item.rpartition(":")
        if not host or not port:
            raise ValueError(f"{item!r} is not host:port (expected e.g. 10.0.0.5:26379,10.0.0.6:26379)")
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"{item!r}: the port must be a number from 1 to 65535")
    return ",".join(part.strip() for part in text.split(",") if part.strip())


def database_url(value: Any) -> str:
    text = string(value).strip()
    if not text:  # unset takes the default; empty is a mistake (a variable set from nothing)
        raise ValueError("expected a postgres:// or sqlite:/// URL (unset it for the default SQLite file)")
    if not text.startswith(("postgres://", "postgresql://", "sqlite:///")):
        raise ValueError("expected a postgres:// or sqlite:/// URL")
    if text.startswith("sqlite:///") and not text.removeprefix("sqlite:///").strip("/"):
        raise ValueError("expected a file after sqlite:/// (e.g. sqlite:///zipline.sqlite3)")
    if text.startswith(("postgres://", "postgresql://")):
        _network_address(text, "postgres://user@127.0.0.1:5432/zipline")
    return text


def url_path(value: Any) -> str:
    text = string(value).strip()
    if not text.startswith("/") or any(c.isspace() or c in "?#" for c in text):
        raise ValueError("expected a path starting with / (e.g. /metrics)")
    return text


_HOST_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")


def listen_host(value: Any) -> str:
    """An address to listen on: an IP address (``0.0.0.0``, ``::`` for every interface) or a host name."""
    text = string(value).strip()
    try:
        return str(ipaddress.ip_address(text.removeprefix("[").removesuffix("]")))
    except ValueError:
        pass
    if not _HOST_NAME.fullmatch(text) or len(text) > 253:
        raise ValueError("expected an IP address or a host name to listen on (e.g. 127.0.0.1, or 0.0.0.0 for all)")
    return text


def key_prefix(value: Any) -> str:
    text = string(value).strip()
    if not text or any(c in text for c in "{} \t\n"):
        raise ValueError("expected a non-empty prefix without braces or spaces")
    return text


_RATE = re.compile(r"([0-9]{1,9})/(s|sec|second|m|min|minute|h|hour|d|day)")


_JOB_RATE = re.compile(r"([0-9]{1,9})/(s|m|h)")


def job_rate(value: Any) -> str:
    """A queue's or group's rate limit (``100/s``, ``1000/m``, ``50000/h``; ``""`` for none): jobs.limits reads it."""
    text = string(value).strip()
    match = _JOB_RATE.fullmatch(text)
    if text and (not match or int(match.group(1)) < 1):
        raise ValueError("expected a rate such as 100/s (per s, m or h, at least 1), or empty for none")
    return text


def rate(value: Any) -> str | None:
    """A rate limit as DRF writes it (``1200/min``), or None for ``off``."""
    text = string(value).strip().lower()
    if text == "off":
        return None
    match = _RATE.fullmatch(text)
    if not match or int(match.group(1)) < 1:
        raise ValueError("expected a rate such as 1200/min (per s, min, h or day), or off")
    return text


def host_ports(value: Any) -> tuple[str, ...]:
    """``host:port,host:port`` (Kafka's bootstrap servers): each address checked, blank items dropped."""
    found = string_list(value)
    for item in found:
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"{item!r} is not host:port (expected e.g. kafka-1:9092,kafka-2:9092)")
    return found


_KAFKA_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")


def kafka_topic(value: Any) -> str:
    """A Kafka topic's name as Kafka allows it: 1 to 249 of ``A-Z a-z 0-9 . _ -``."""
    text = string(value).strip()
    if not _KAFKA_TOPIC.fullmatch(text) or text in (".", ".."):
        raise ValueError("expected a Kafka topic name: 1 to 249 of A-Z, a-z, 0-9, '.', '_', '-'")
    return text
