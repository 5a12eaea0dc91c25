"""The benchmarks' load generators are found, or installed, or the benchmark stops with one line."""

from __future__ import annotations

import shutil

import pytest

from bench.tools import ensure_tool


def test_a_tool_on_the_path_is_used_as_it_is() -> None:
    assert ensure_tool("sh", "no-such-package-is-installed") == shutil.which("sh")


def test_a_tool_that_cannot_be_installed_stops_the_benchmark_with_the_line_that_installs_it() -> None:
    with pytest.raises(SystemExit) as stopped:
        ensure_tool("zipline-no-such-tool", "zipline-no-such-package")
    message = str(stopped.value)
    assert message.startswith("zipline-no-such-tool is needed")
    assert message.endswith("apt-get install zipline-no-such-package")
    assert "\n" not in message
