"""The typed sections of the configuration: built from the SETTINGS table, every setting in one place."""

from __future__ import annotations

import dataclasses
import types
import typing

import pytest
from django.conf import settings

from tests.helpers import override_zipline
from zipline_site import sections
from zipline_site.config import SETTINGS, load_config
from zipline_site.sections import SECTIONS, Config, setting_of


def test_every_setting_fills_exactly_one_section_field() -> None:
    filled = [setting_of(section, f.name) for section in SECTIONS.values() for f in dataclasses.fields(section)]
    assert sorted(filled) == sorted(s.attribute for s in SETTINGS)


def _runtime_types(hint: object) -> tuple[type, ...]:
    """The classes ``isinstance`` checks for a field's type: ``str | None`` -> (str, NoneType), ``tuple[str, ...]``
    -> (tuple,); a float field also takes a whole number."""
    if isinstance(hint, types.UnionType):
        return tuple(t for arg in typing.get_args(hint) for t in _runtime_types(arg))
    base = typing.get_origin(hint) or hint
    assert isinstance(base, type)
    return (float, int) if base is float else (base,)


def test_every_field_holds_the_type_it_declares() -> None:
    """Defaults and values from variables alike: a parser and a field type that disagree fail here."""
    for config in (load_config({}), load_config({"JQS_API_SUBMIT_RATE": "off", "JQS_APPS": "jobs"})):
        for name, section in SECTIONS.items():
            hints = typing.get_type_hints(section, vars(sections))
            for f in dataclasses.fields(section):
                value = getattr(getattr(config, name), f.name)
                expected = hints[f.name]
                assert isinstance(value, _runtime_types(expected)), f"{name}.{f.name} = {value!r}: expected {expected}"


def test_sections_are_built_from_the_values_and_frozen() -> None:
    config = load_config({"JQS_WORKER_LEASE_TTL": "45s", "JQS_EMAIL_FROM": "ops@example.com"})
    assert config.worker.lease_ttl == 45.0 and config.email.sender == "ops@example.com"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.worker.lease_ttl = 1.0  # type: ignore[misc]


def test_secrets_stay_out_of_a_section_s_repr() -> None:
    config = load_config({"JQS_REDIS_PASSWORD": "RedisPw1", "JQS_EMAIL_PASSWORD": "MailPw1", "JQS_SECRET_KEY": "Sk1"})
    shown = repr((config.redis, config.email, config.security))
    assert "RedisPw1" not in shown and "MailPw1" not in shown and "Sk1" not in shown


def test_override_zipline_rebuilds_the_sections() -> None:
    before = settings.ZIPLINE.scheduler.batch_size
    with override_zipline(scheduler_batch_size=before + 7):
        assert settings.ZIPLINE.scheduler.batch_size == before + 7
        assert isinstance(settings.ZIPLINE, Config)
    assert settings.ZIPLINE.scheduler.batch_size == before


def test_the_configuration_has_no_untyped_attributes() -> None:
    """Reads go through a typed section: a flat ``config.worker_count`` no longer exists."""
    config = load_config({})
    assert not hasattr(config, "worker_count") and not hasattr(Config, "__getattr__")
