"""A Redis Cluster of a test's own: three masters on free ports, the slots spread over them (never the shared Redis)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis

from tests.procs import free_port
from tests.redis_server import RedisServer


class Cluster:
    """Three ``redis-server --cluster-enabled yes`` joined by ``redis-cli --cluster create``."""

    def __init__(self, directory: Path, masters: int = 3) -> None:
        self.nodes = []
        for index in range(masters):
            own = directory / f"node-{index}"
            own.mkdir()
            # The cluster bus takes the port 10000 above Redis' own unless told (none above 55535 has one).
            bus = ("--cluster-port", str(free_port()))
            config = ("--cluster-config-file", str(own / "nodes.conf"), "--cluster-node-timeout", "2000")
            self.nodes.append(RedisServer(own, "--cluster-enabled", "yes", *config, *bus))

    @property
    def url(self) -> str:
        """A URL of one node: the cluster client finds the others from it."""
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses, "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=30,
        )
        deadline = time.monotonic() + 30
        while not all(self._ok(node.port) for node in self.nodes):
            if time.monotonic() > deadline:
                raise AssertionError("the cluster did not reach cluster_state:ok within 30 s")
            time.sleep(0.05)

    @staticmethod
    def _ok(port: int) -> bool:
        client = redis.Redis(port=port, socket_timeout=1)
        try:
            return b"cluster_state:ok" in client.execute_command("CLUSTER", "INFO")
        finally:
            client.close()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
