"""A Redis Cluster of a test's own: three masters with one replica each on free ports, the slots spread over
the masters (never the shared Redis).

``python -m tests.redis_cluster DIRECTORY`` starts one and prints its ``redis+cluster://`` URL, for
``make test-cluster`` (tests/cluster_session.py).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import cast

import redis

from tests.procs import free_port
from tests.redis_server import RedisServer

NODE_TIMEOUT_MS = 2000  # a master unreachable this long is failed over to its replica


def cluster_ok(port: int) -> bool:
    """The node on ``port`` of 127.0.0.1 says ``cluster_state:ok`` (False while it cannot answer)."""
    client = redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1)
    try:
        return b"cluster_state:ok" in client.execute_command("CLUSTER", "INFO")
    except redis.RedisError:
        return False
    finally:
        client.close()


def _client(node: RedisServer) -> redis.Redis:
    return redis.Redis(port=node.port, socket_timeout=1, socket_connect_timeout=1)


def _replication(node: RedisServer) -> dict[str, object]:
    """The node's ``INFO replication`` ({} when it does not answer)."""
    client = _client(node)
    try:
        return dict(cast(dict[str, object], client.info("replication")))
    except redis.RedisError:
        return {}
    finally:
        client.close()


def _wait(predicate: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"the cluster: {what} not within {seconds:.0f} s")
        time.sleep(0.05)


class Cluster:
    """``masters`` times ``redis-server --cluster-enabled yes`` (each with ``replicas`` replicas) joined by
    ``redis-cli --cluster create ... --cluster-replicas N``."""

    def __init__(self, directory: Path, masters: int = 3, replicas: int = 1) -> None:
        self.replicas = replicas
        self.nodes: list[RedisServer] = []
        for index in range(masters * (1 + replicas)):
            own = directory / f"node-{index}"
            own.mkdir(parents=True)
            # The cluster bus takes the port 10000 above Redis' own unless told (none above 55535 has one).
            bus = ("--cluster-port", str(free_port()))
            timeout = ("--cluster-node-timeout", str(NODE_TIMEOUT_MS))
            config = ("--cluster-config-file", str(own / "nodes.conf"), *timeout)
            node = RedisServer(own, "--cluster-enabled", "yes", *config, *bus)
            node.port = free_port()  # free_port never hands out the same port twice
            self.nodes.append(node)
        self.masters_at_start = masters

    @property
    def url(self) -> str:
        """A URL of one node: a cluster client finds the others from it."""
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    @property
    def cluster_url(self) -> str:
        """The ``redis+cluster://`` URL of every node, as ``JQS_REDIS_URL`` takes it."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def start(self) -> None:
        """Start and join the nodes; stop them all when the cluster does not come up."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=30,
        )
        _wait(lambda: all(self.ok(node) for node in self.nodes), 30, "cluster_state:ok on every node")
        self.wait_replicas_synced()

    def ok(self, node: RedisServer) -> bool:
        return cluster_ok(node.port)

    def masters(self) -> list[RedisServer]:
        """The nodes running that are masters now."""
        return [n for n in self.nodes if n.process is not None and _replication(n).get("role") == "master"]

    def replicas_of(self, master: RedisServer) -> list[RedisServer]:
        return [n for n in self.nodes if n.process is not None and _replication(n).get("master_port") == master.port]

    def wait_replicas_synced(self, seconds: float = 30) -> None:
        """Every replica has finished its initial sync (a failover before it would lose the slot's data)."""
        running = [n for n in self.nodes if n.process is not None and n not in self.masters()]
        _wait(lambda: all(_replication(n).get("master_link_status") == "up" for n in running), seconds, "sync")

    def wait_failed_over(self, dead: RedisServer, replica: RedisServer, seconds: float = 30) -> None:
        """``replica`` of the ``dead`` master is a master, and the nodes still running agree the cluster is ok."""
        running = [n for n in self.nodes if n.process is not None]
        _wait(lambda: _replication(replica).get("role") == "master", seconds, f"{replica.port} promoted")
        _wait(lambda: all(self.ok(n) for n in running), seconds, "cluster_state:ok after the failover")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


if __name__ == "__main__":  # the session cluster of make test-cluster: start, print the URL, wait for stdin
    import sys

    group = Cluster(Path(sys.argv[1]))
    try:
        group.start()
        print(group.cluster_url, flush=True)
        sys.stdin.read()  # until the test run closes the pipe (or dies)
    finally:
        group.stop()
