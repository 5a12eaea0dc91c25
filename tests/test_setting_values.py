"""zipline_site.setting_values: a value read once, and read again after the settings change."""

from __future__ import annotations

from django.conf import settings
from django.test import override_settings

from zipline_site.setting_values import read_once


def test_a_value_is_read_once_and_again_after_a_setting_changes() -> None:
    reads: list[str] = []

    def read() -> str:
        reads.append(settings.SECRET_KEY)
        return settings.SECRET_KEY

    key = read_once(read)
    assert key() == key() == settings.SECRET_KEY
    assert len(reads) == 1
    with override_settings(SECRET_KEY="changed-for-this-test"):
        assert key() == "changed-for-this-test"
    assert key() == settings.SECRET_KEY  # the override's end is a change too
    assert len(reads) == 3
