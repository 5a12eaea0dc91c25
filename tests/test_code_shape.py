"""The code's shape (issue 13): no module over 400 lines and no function over 40 lines, outside migrations,
tests, the virtualenv and the benchmark's peers (other projects' code, written as they would).

A function's length is its ``def`` line to its last line, decorators excluded; a nested function counts on
its own and inside the function that holds it.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 40
# Directories never scanned, by their path from the root; hidden ones (.venv, .git, .local) are skipped too.
# jobs/grpc/proto holds code grpcio-tools generates from zipline.proto (tests/test_grpc_codegen.py checks it).
SKIPPED_DIRS = {"tests", "bench/peers", "node_modules", "staticfiles", "build", "jobs/grpc/proto"}

# Still over, each waiting for its rewrite. This list only shrinks: never add to it, and remove an entry
# as soon as it is under the limit (test_every_allowed_excess_is_still_over fails until it is removed).
MODULES_OVER: set[str] = set()
FUNCTIONS_OVER: set[str] = set()


def _python_files() -> Iterator[str]:
    """Every scanned .py file, as its path from the root."""
    for directory, subdirs, files in os.walk(ROOT):
        relative = Path(directory).relative_to(ROOT).as_posix()
        subdirs[:] = sorted(
            name
            for name in subdirs
            if not name.startswith(".")
            and name != "migrations"
            and (name if relative == "." else f"{relative}/{name}") not in SKIPPED_DIRS
        )
        for name in sorted(files):
            if name.endswith(".py"):
                yield name if relative == "." else f"{relative}/{name}"


def _functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, int]]:
    """(qualified name, lines) of every function in ``tree``, methods and nested functions included."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = f"{prefix}{node.name}"
            if not isinstance(node, ast.ClassDef):
                yield name, (node.end_lineno or node.lineno) - node.lineno + 1
            yield from _functions(node, f"{name}.")
        else:
            yield from _functions(node, prefix)


def long_functions(source: str, path: str) -> dict[str, int]:
    """``path::name`` -> lines, for each function of ``source`` over :data:`MAX_FUNCTION_LINES`."""
    return {
        f"{path}::{name}": lines
        for name, lines in _functions(ast.parse(source, filename=path))
        if lines > MAX_FUNCTION_LINES
    }


def _long_modules() -> dict[str, int]:
    lengths = {path: len((ROOT / path).read_text(encoding="utf-8").splitlines()) for path in _python_files()}
    return {path: lines for path, lines in lengths.items() if lines > MAX_MODULE_LINES}


def _all_long_functions() -> dict[str, int]:
    found: dict[str, int] = {}
    for path in _python_files():
        found.update(long_functions((ROOT / path).read_text(encoding="utf-8"), path))
    return found


def test_the_scan_covers_the_packages_and_skips_what_it_should() -> None:
    files = set(_python_files())
    for expected in ("manage.py", "jobs/validation.py", "workers/supervisor.py", "zipline_site/config.py"):
        assert expected in files, f"{expected} is not scanned"
    assert "bench/run.py" in files and "bench/peers/celery.py" not in files
    skipped = [path for path in files if path.startswith(("tests/", ".venv/")) or "/migrations/" in path]
    assert not skipped, f"scanned files that should be skipped: {skipped[:5]}"


def test_no_module_is_over_400_lines() -> None:
    over = {path: lines for path, lines in _long_modules().items() if path not in MODULES_OVER}
    assert not over, "modules over 400 lines (split them by purpose): " + ", ".join(
        f"{path} ({lines} lines)" for path, lines in sorted(over.items())
    )


def test_no_function_is_over_40_lines() -> None:
    over = {name: lines for name, lines in _all_long_functions().items() if name not in FUNCTIONS_OVER}
    assert not over, "functions over 40 lines: " + ", ".join(
        f"{name} ({lines} lines)" for name, lines in sorted(over.items())
    )


def test_every_allowed_excess_is_still_over() -> None:
    """The allowlists only shrink: an entry now under the limit (or gone) must be removed from them."""
    stale = (MODULES_OVER - set(_long_modules())) | (FUNCTIONS_OVER - set(_all_long_functions()))
    assert not stale, f"no longer over the limit, remove from the allowlist in {__file__}: {sorted(stale)}"


def test_the_check_names_the_file_the_function_and_its_length() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(40))
    source = f"class Pool:\n    @property\n    def size(self):\n{body.replace('    ', '        ')}\n"
    source += f"\n\ndef short():\n    def inner():\n{body.replace('    ', '        ')}\n    return inner\n"
    # size: its def line and 40 more (the decorator does not count); inner: the same; short: 43 lines.
    assert long_functions(source, "pkg/mod.py") == {
        "pkg/mod.py::Pool.size": 41,
        "pkg/mod.py::short": 43,
        "pkg/mod.py::short.inner": 41,
    }
    forty = "def f():\n" + "\n".join(body.splitlines()[:39]) + "\n"
    assert long_functions(forty, "m.py") == {}  # exactly 40 lines is allowed
