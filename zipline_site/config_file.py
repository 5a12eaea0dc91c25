"""The YAML configuration file (``JQS_CONFIG`` or ``--config``): its sections and keys, by setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zipline_site.config_errors import ConfigError
from zipline_site.settings_table import BY_PLACE, SECTION_NAMES


def read_yaml(path: str) -> dict[str, Any]:
    """The settings the YAML file at ``path`` sets, by attribute: ``(value, place)`` for each.

    Raises :class:`ConfigError` for a missing or unreadable file, and for an unknown section or key.
    """
    import yaml  # here, not at the top: without a config file no process loads it (19 modules, about 1 MiB)

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
        if section not in SECTION_NAMES:
            raise ConfigError(f"config file {path!r}: unknown section {section!r}")
        top_level = BY_PLACE.get((section, None))
        if top_level is not None:  # a setting of its own at the top (apps: [...]), not a section
            if body is not None:
                found[top_level.attribute] = (body, section)
            continue
        if body is None:
            continue
        if not isinstance(body, dict):
            raise ConfigError(f"config file {path!r}: section {section!r} must be a mapping")
        for key, value in body.items():
            setting = BY_PLACE.get((section, key))
            if setting is None:
                raise ConfigError(f"config file {path!r}: unknown key {section}.{key}")
            found[setting.attribute] = (value, f"{section}.{key}")
    return found
