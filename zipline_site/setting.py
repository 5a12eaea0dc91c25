"""One row of the settings table: a setting's attribute, YAML place, variable, parser, default and help."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


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


def row(attribute: str, place: str | None, env: str, parse: Callable[[Any], Any], default: Any, help: str) -> Setting:
    section, key = place.split(".") if place and "." in place else (place, None)  # "apps": a top-level key
    return Setting(attribute, section, key, env, parse, default, help)
