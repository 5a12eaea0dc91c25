"""The README's Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from jobs.registry import registry

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


@pytest.mark.django_db(transaction=True)
def test_readme_python_examples_run(broker: object) -> None:
    blocks = python_blocks()
    assert len(blocks) >= 2
    try:
        for block in blocks:
            exec(compile(block, str(README), "exec"), {"__name__": "readme_example"})  # noqa: S102
        assert "resize_image" in registry and "custom_job" in registry
    finally:
        registry.unregister("resize_image")
        registry.unregister("custom_job")
