"""What the docs and docstrings promise is what the code and the tests hold."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest
import redis
from redis.crc import key_slot

from jobs.broker import Broker, BrokerUnavailable, PushItem
from tests.helpers import wait_for
from tests.procs import free_port
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]
TESTS = ROOT / "tests"
SOURCE_DIRS = ("jobs", "workers", "scheduler", "zipline_site", "bench", "deploy")


def _paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text) if p.strip()]


def _docs_and_sources() -> list[Path]:
    sources = [
        path
        for directory in SOURCE_DIRS
        for path in sorted((ROOT / directory).rglob("*"))
        if path.suffix in {".py", ".lua", ".md", ".yaml", ".yml"}
        and path.is_file()
        # not the benchmark's peer venvs (bench/.peers-venv*, made by `make bench`): other projects' code
        and not any(part.startswith(".") for part in path.relative_to(ROOT).parts)
    ]
    return [*DOCS, *sources]


def test_redis_cluster_is_claimed_with_the_tests_that_prove_it() -> None:
    """No paragraph still says Redis Cluster is not supported, and the operations page's Cluster section cites
    tests that exist (the failover's among them) and the make target that runs the suite on a cluster."""
    stale = [
        f"{path.relative_to(ROOT)}: {paragraph.strip()[:200]}"
        for path in _docs_and_sources()
        for paragraph in _paragraphs(path.read_text(encoding="utf-8"))
        if re.search(r"\bCluster\b", paragraph) and "not supported" in paragraph
    ]
    assert not stale, "these paragraphs still say Redis Cluster is not supported:\n" + "\n".join(stale)
    section = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8").split("## Redis Cluster\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    cited = re.findall(r"(test_\w+\.py)::(test_\w+)", section)
    assert ("test_redis_cluster.py", "test_a_master_killed_under_load_fails_over_and_loses_no_job") in cited
    for file, name in cited:
        assert name in _tests_by_file().get(file, frozenset()), f"{file}::{name} is cited but does not exist"
    assert "make test-cluster" in section
    assert re.search(r"^test-cluster:", (ROOT / "Makefile").read_text(encoding="utf-8"), re.MULTILINE)


def test_a_queue_s_keys_share_one_slot_and_a_wait_on_several_queues_spans_slots(broker: Broker) -> None:
    """The two facts the docs state about Cluster: each script stays in one slot, the workers' BLPOP does not."""
    for queue in ("default", "high", "emails"):
        keys = broker.keys(queue)
        names = [keys.ready, keys.delayed, keys.prio, keys.seq, keys.notify, keys.leases, keys.owners, keys.paused]
        assert len({key_slot(name.encode()) for name in names}) == 1, queue
    notify_slots = {key_slot(broker.keys(queue).notify.encode()) for queue in ("high", "default", "low")}
    assert len(notify_slots) == 3


def test_on_a_cluster_a_single_node_client_s_wait_on_several_queues_is_refused(tmp_path: Path) -> None:
    """Why the broker needs the cluster client on a cluster, on a real one-node cluster that owns every slot
    (the broker on ``RedisCluster`` waits otherwise: tests/test_broker_cluster.py)."""
    # The cluster bus takes the port 10000 above Redis' own unless told (no free port above 55535 has one).
    bus = ("--cluster-port", str(free_port()))
    server = RedisServer(
        tmp_path, "--cluster-enabled", "yes", "--cluster-config-file", str(tmp_path / "nodes.conf"), *bus
    )
    server.start()
    try:
        node = redis.Redis(port=server.port)
        node.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        wait_for(lambda: b"cluster_state:ok" in node.execute_command("CLUSTER", "INFO"), 10, 0.05, "cluster state ok")
        broker = Broker(node, "ziptest")
        broker.push([PushItem("high", "job-1", 0)])
        assert broker.claim("high", "worker", 10, 30_000).ids == ["job-1"]
        assert broker.wait_and_claim(["high"], 0.01, "high", "worker", 10, 30_000).ids == []
        with pytest.raises(BrokerUnavailable) as raised:
            broker.wait_and_claim(["high", "default"], 0.01, "high", "worker", 10, 30_000)
        assert isinstance(raised.value.__cause__, redis.exceptions.ClusterCrossSlotError)
    finally:
        server.stop()


@cache
def _tests_by_file() -> dict[str, frozenset[str]]:
    """Every test function (or method) defined in tests/, by file name."""
    return {
        path.name: frozenset(
            node.name
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_")
        )
        for path in sorted(TESTS.glob("test_*.py"))
    }


# `tests/test_x.py::test_y`, `test_x.py`, `tests/test_scheduler_*.py`, or a bare `test_y`.
_TEST_REFERENCE = re.compile(r"\b(?:tests/)?(test_[\w*]*\.py)(?:::(test_\w+))?|\b(test_\w+)\b")


def _missing_tests(text: str) -> list[str]:
    by_file = _tests_by_file()
    every_test = frozenset().union(*by_file.values())
    missing = []
    for match in _TEST_REFERENCE.finditer(text):
        file, function, bare = match.groups()
        if file and "*" in file:
            if not list(TESTS.glob(file)):
                missing.append(file)
        elif file and (file not in by_file or (function and function not in by_file[file])):
            missing.append(match.group(0))
        elif bare and bare not in every_test:
            missing.append(bare)
    return missing


def test_every_test_the_docs_name_exists() -> None:
    missing = {str(doc.relative_to(ROOT)): names for doc in DOCS if (names := _missing_tests(doc.read_text()))}
    assert not missing, f"the docs name tests that do not exist: {missing}"


def test_the_check_finds_a_test_that_does_not_exist() -> None:
    some_file, some_tests = next((name, tests) for name, tests in _tests_by_file().items() if tests)
    some_test = sorted(some_tests)[0]
    assert _missing_tests(f"`{some_file}::{some_test}`, `{some_test}`, `tests/test_scheduler_*.py`") == []
    assert _missing_tests(f"`{some_file}::test_nothing_like_it`, `test_no_such_thing`, `tests/test_nope_*.py`") == [
        f"{some_file}::test_nothing_like_it",
        "test_no_such_thing",
        "test_nope_*.py",
    ]


def _fault_matrix() -> list[list[str]]:
    rows = [
        line for line in (ROOT / "docs" / "reliability.md").read_text().splitlines() if re.match(r"\| F\d\d ", line)
    ]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def test_every_covered_row_of_the_fault_matrix_names_its_tests() -> None:
    rows = _fault_matrix()
    assert [row[0] for row in rows] == [f"F{n:02d}" for n in range(1, len(rows) + 1)]
    unproven = [row[0] for row in rows if row[2].startswith("covered") and "test_" not in row[3]]
    assert not unproven, f"fault matrix rows marked covered without a test: {unproven}"
