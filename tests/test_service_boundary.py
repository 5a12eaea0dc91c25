"""Every caller goes through ``jobs.service``: the REST views, the admin, the dashboard and the jobs
app's management commands import neither the broker nor the state machine nor the layers under the
service, and delete nothing themselves; a job id is parsed only by ``jobs/ids.py``."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CALLERS = ("jobs/api/views.py", "jobs/admin", "jobs/dashboard", "jobs/management/commands", "jobs/grpc", "jobs/kafka")
#: What only the service (and the layers under it) may use.
BELOW_THE_SERVICE = ("jobs.broker", "jobs.states", "jobs.client", "jobs.queues", "jobs.dispatch", "jobs.insert")


def _modules(*places: str) -> Iterator[tuple[str, ast.Module]]:
    for place in places:
        path = ROOT / place
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            if "migrations" not in file.parts:
                yield str(file.relative_to(ROOT)), ast.parse(file.read_text(encoding="utf-8"))


def _imported(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """(line, module) for every import, ``from jobs import states`` counted as ``jobs.states``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.lineno, node.module
            yield from ((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)


def _is_below(module: str) -> bool:
    return any(module == below or module.startswith(below + ".") for below in BELOW_THE_SERVICE)


def test_the_callers_import_nothing_below_the_service() -> None:
    found = [
        f"{name}:{line}: {module}"
        for name, tree in _modules(*CALLERS)
        for line, module in _imported(tree)
        if _is_below(module)
    ]
    assert not found, "a caller reaches past jobs.service:\n" + "\n".join(found)


def test_the_callers_delete_and_transition_nothing_themselves() -> None:
    found = []
    for name, tree in _modules(*CALLERS):
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if node.func.attr in ("delete", "transition"):
                    found.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
    assert not found, "a caller changes rows outside jobs.service:\n" + "\n".join(found)


def test_only_jobs_ids_parses_a_job_id() -> None:
    """``uuid.UUID(...)`` (and Django's ``<uuid:>`` path converter) appear nowhere else."""
    found = []
    for name, tree in _modules("jobs", "scheduler", "workers", "zipline_site"):
        if name == "jobs/ids.py":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("uuid.UUID", "UUID"):
                found.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "<uuid:" in node.value:
                found.append(f"{name}:{node.lineno}: {node.value}")
    assert not found, "a job id parsed outside jobs/ids.py:\n" + "\n".join(found)


def test_the_rules_see_a_breach() -> None:
    """The checks above would fail on the code they forbid (they are not vacuous)."""
    tree = ast.parse("from jobs import states\nimport jobs.broker\nJob.objects.filter(pk=1).delete()\n")
    assert [m for _, m in _imported(tree) if _is_below(m)] == ["jobs.states", "jobs.broker"]
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)]
    assert "delete" in {c.func.attr for c in calls if isinstance(c.func, ast.Attribute)}
