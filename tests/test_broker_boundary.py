"""Redis stays behind ``jobs/broker/``: no code outside the package reaches for a broker's raw client
or builds a client of its own, and ``jobs`` does not import the layers above it (``workers``,
``scheduler``), which it once did for the worker registry."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "jobs" / "broker"
# It pings a URL of its own choosing before Django (and so the broker's settings) exists.
OWN_CLIENT_ALLOWED = {"zipline_site/firstlook.py"}


def _modules(*tops: str) -> Iterator[tuple[str, ast.Module]]:
    for top in tops:
        for path in sorted((ROOT / top).rglob("*.py")):
            if PACKAGE in path.parents or "migrations" in path.parts:
                continue
            yield str(path.relative_to(ROOT)), ast.parse(path.read_text(encoding="utf-8"))


def _mentions_a_broker(node: ast.expr) -> bool:
    return "broker" in ast.unparse(node).lower()


def test_nothing_outside_the_package_touches_the_raw_client() -> None:
    found = []
    for name, tree in _modules("jobs", "workers", "scheduler", "zipline_site"):
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "client" and _mentions_a_broker(node.value):
                found.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
            elif (
                isinstance(node, ast.Attribute)
                and node.attr == "Redis"
                and ast.unparse(node.value) == "redis"
                and name not in OWN_CLIENT_ALLOWED
            ):
                found.append(f"{name}:{node.lineno}: redis.Redis")
    assert not found, "raw Redis use outside jobs/broker/:\n" + "\n".join(found)


def test_jobs_imports_neither_workers_nor_scheduler() -> None:
    found = []
    for name, tree in _modules("jobs"):
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            found += [f"{name}:{node.lineno}: {m}" for m in modules if m.split(".")[0] in ("workers", "scheduler")]
    assert not found, "jobs/ imports a layer above it:\n" + "\n".join(found)
