"""A Redis master, a replica and three sentinels of a test's own, on free ports (never the shared Redis)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from tests.procs import free_port
from tests.redis_server import RedisServer

MASTER_NAME = "zipmaster"


class Sentinels:
    """``master`` and ``replica`` are :class:`RedisServer`; three ``redis-server --sentinel`` watch them."""

    def __init__(self, directory: Path, quorum: int = 2) -> None:
        self.directory = directory
        self.quorum = quorum
        (directory / "master").mkdir()
        (directory / "replica").mkdir()
        self.master = RedisServer(directory / "master")
        self.replica = RedisServer(directory / "replica")
        self.ports = [free_port() for _ in range(3)]
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def addresses(self) -> str:
        """``JQS_REDIS_SENTINELS``'s value."""
        return ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def start(self) -> None:
        self.master.start()
        self.replica.options = ("--replicaof", "127.0.0.1", str(self.master.port))
        self.replica.start()
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        for port in self.ports:
            config = self.directory / f"sentinel-{port}.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.directory}\n"
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master.port} {self.quorum}\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
                f"sentinel failover-timeout {MASTER_NAME} 5000\n"
                f"sentinel parallel-syncs {MASTER_NAME} 1\n"
            )
            self.processes.append(
                subprocess.Popen(
                    [binary, str(config), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            )
        self._wait_until_settled()

    def _wait_until_settled(self, timeout: float = 30.0) -> None:
        """Every sentinel sees the replica and the two other sentinels (so a failover can be agreed)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if all(self._settled(port) for port in self.ports):
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the sentinels did not find the replica and each other within 30 s")
            time.sleep(0.1)

    def _settled(self, port: int) -> bool:
        client = redis.Redis(port=port, socket_timeout=1, decode_responses=True)
        try:
            replicas = client.execute_command("SENTINEL", "REPLICAS", MASTER_NAME)
            others = client.execute_command("SENTINEL", "SENTINELS", MASTER_NAME)
        finally:
            client.close()
        return len(replicas) >= 1 and len(others) >= 2

    def master_port(self) -> int:
        """The master's port as a sentinel reports it now."""
        client = redis.Redis(port=self.ports[0], socket_timeout=1, decode_responses=True)
        try:
            _host, port = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
        finally:
            client.close()
        return int(port)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        self.processes.clear()
        self.master.stop()
        self.replica.stop()
