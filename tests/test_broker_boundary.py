"""Redis stays behind ``jobs/broker/``: no code outside the package reaches for a broker's raw client,
builds a client of its own or catches redis-py's errors (the package raises one ``BrokerUnavailable``),
and ``jobs`` does not import the layers above it (``workers``, ``scheduler``), which it once did for
the worker registry."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from jobs.broker import Broker, BrokerUnavailable, PushItem, auth_generation, counters, heartbeat
from jobs.broker.locks import Lock, once_per_interval

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


def _imports(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """(line, module) for every import in ``tree``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)


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
        found += [f"{name}:{line}: {m}" for line, m in _imports(tree) if m.split(".")[0] in ("workers", "scheduler")]
    assert not found, "jobs/ imports a layer above it:\n" + "\n".join(found)


def test_workers_and_scheduler_do_not_import_each_other() -> None:
    """Both services stand on jobs/ side by side (docs/architecture.md, Layers)."""
    found = []
    for top, other in (("workers", "scheduler"), ("scheduler", "workers")):
        for name, tree in _modules(top):
            found += [f"{name}:{line}: {m}" for line, m in _imports(tree) if m.split(".")[0] == other]
    assert not found, "a service imports the other:\n" + "\n".join(found)


def test_nothing_outside_the_package_imports_redis() -> None:
    found = []
    for name, tree in _modules("jobs", "workers", "scheduler", "zipline_site"):
        if name in OWN_CLIENT_ALLOWED:
            continue
        found += [f"{name}:{line}: {m}" for line, m in _imports(tree) if m.split(".")[0] == "redis"]
    assert not found, "redis imported outside jobs/broker/:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "call",
    [
        lambda b: b.push([PushItem("q", "job-1")]),
        lambda b: b.claim("q", "w", 1, 1000),
        lambda b: b.wait_and_claim(["q"], 0.01, "q", "w", 1, 1000),
        lambda b: b.ping(),
        lambda b: list(b.scan_ids("q", "ready", 10)),
        lambda b: heartbeat.live_workers(b),
        lambda b: Lock(b, "rebuild", "me", 1).acquire(),
        lambda b: once_per_interval(b, "gate:x", "me", 1),
        lambda b: counters.hit(b, "k", cost=1, window_ms=1000, limit=None),
        lambda b: auth_generation.current(b),
    ],
    ids=[
        "push",
        "claim",
        "wait_and_claim",
        "ping",
        "scan_ids",
        "live_workers",
        "lock",
        "gate",
        "counter",
        "generation",
    ],
)
def test_a_redis_out_of_reach_is_one_broker_unavailable(call: Callable[[Broker], object]) -> None:
    """Whichever function of the package is called, the caller catches one error; the cause says why."""
    broker = Broker(redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1), "ziptest")
    with pytest.raises(BrokerUnavailable) as raised:
        call(broker)
    assert isinstance(raised.value.__cause__, redis.ConnectionError)
