"""ZipLine's configuration: ``JQS_*`` environment variables over a YAML file (``JQS_CONFIG``) over defaults.

Every setting is declared once in :data:`SETTINGS` (``zipline_site/settings_table.py``), with its YAML place,
its variable, its parser (``zipline_site/parsers.py``) and its default; the README's configuration table is
checked against this list by a test. A wrong value raises :class:`ConfigError`, whose message is one line
naming the setting and the value; the entry points turn it into that line on stderr and exit status 2.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from zipline_site.config_errors import ConfigError, mask_passwords, scrub
from zipline_site.config_file import read_yaml
from zipline_site.exit_codes import ExitCode
from zipline_site.parsers import CLUSTER_SCHEMES
from zipline_site.sections import Config
from zipline_site.setting import Setting
from zipline_site.settings_table import BY_ATTRIBUTE, SETTINGS

# Imported from here by the entry points, the settings and the tests; built in the modules named above.
__all__ = [
    "EXIT_CONFIG_ERROR",
    "SETTINGS",
    "Config",
    "ConfigError",
    "Setting",
    "config_file_from_argv",
    "load_config",
    "mask_passwords",
    "parse_setting",
    "redis_url",
    "server_address",
]

EXIT_CONFIG_ERROR = ExitCode.CONFIG
_SECRET_SETTINGS = {"JQS_REDIS_PASSWORD", "JQS_REDIS_SENTINEL_PASSWORD", "JQS_EMAIL_PASSWORD", "JQS_SECRET_KEY"}


def parse_setting(attribute: str, value: Any) -> Any:
    """``value`` parsed as the setting ``attribute`` takes it (for a flag that overrides it).

    Raises ValueError saying what is expected, as for the variable or the YAML key.
    """
    return BY_ATTRIBUTE[attribute].parse(value)


def load_config(environ: Mapping[str, str] | None = None, config_file: str | None = None) -> Config:
    """Resolve every setting: environment over file over defaults. Raises :class:`ConfigError`."""
    env = os.environ if environ is None else environ
    path = config_file or env.get("JQS_CONFIG") or None
    from_file = read_yaml(path) if path else {}
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
                raise ConfigError(f"{origin}={mask_passwords(raw)!r}: {scrub(str(exc), raw)}") from None
            raise ConfigError(f"{origin}={raw!r}: {exc}") from None
    if values["api_open"] and not values["debug"]:
        raise ConfigError("JQS_API_OPEN=true needs JQS_DEBUG=true: an open API is for local development only")
    _check_cluster(values)
    return Config(values=values, source_file=path)


def _check_cluster(values: Mapping[str, Any]) -> None:
    """A Redis Cluster (``JQS_REDIS_CLUSTER`` or a ``redis+cluster://`` URL) goes with neither sentinels nor a
    database other than 0 (a cluster has only database 0)."""
    by_url = str(values["redis_url"]).startswith(CLUSTER_SCHEMES)
    if not (by_url or values["redis_cluster"]):
        return
    chosen = "JQS_REDIS_URL=redis+cluster://..." if by_url else "JQS_REDIS_CLUSTER=true"
    if values["redis_sentinels"]:
        raise ConfigError(f"{chosen} and JQS_REDIS_SENTINELS: a Redis Cluster fails over by itself; set one of them")
    url = str(values["redis_url"])
    if url.startswith(("redis://", "rediss://")):
        from urllib.parse import urlsplit

        if urlsplit(url).path.strip("/") not in ("", "0"):
            raise ConfigError(f"JQS_REDIS_URL={mask_passwords(url)!r}: a Redis Cluster has only database 0 ({chosen})")
    elif not url and values["redis_database"] != 0:
        raise ConfigError(
            f"JQS_REDIS_DATABASE={values['redis_database']}: a Redis Cluster has only database 0 ({chosen})"
        )


def redis_url(config: Config) -> str:
    """The Redis URL the config names, built from the parts unless ``JQS_REDIS_URL`` is set."""
    section = config.redis
    if section.url:
        return section.url
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
