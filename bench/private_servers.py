"""A PostgreSQL cluster and a redis-server of the benchmark's own, on free ports, for measurements that
must not count anyone else's work: ``pg_stat_statements`` needs ``shared_preload_libraries`` (a
server start), and the shared servers' CPU time and counters include every other client's.

The PostgreSQL cluster keeps initdb's durability defaults (fsync on, ``synchronous_commit`` on). As
root, it runs as ``postgres`` (PostgreSQL refuses root). Both are stopped and their files removed on
the way out of the ``with`` block.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from bench.procs import free_port


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else (shutil.which(name) or name)


class PrivatePostgres:
    """initdb in a temporary folder, started with ``pg_stat_statements`` loaded; one database."""

    def __init__(self, database: str = "zipline_bench") -> None:
        self.root = Path(tempfile.mkdtemp(prefix="zipline-bench-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.database = database
        self.user = "postgres" if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        """Where the benchmark's database is."""
        return f"postgres://postgres@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *command: str) -> None:
        argv = ["runuser", "-u", self.user, "--", *command] if self.user else list(command)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode:
            raise RuntimeError(f"{' '.join(command[:2])} failed: {done.stderr.strip()[-500:]}")

    def postmaster_pid(self) -> int:
        """The server's main process (every other PostgreSQL process of this cluster is its child)."""
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def __enter__(self) -> PrivatePostgres:
        if self.user:
            shutil.chown(self.root, self.user)
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} "
            "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track_utility=on"
        )
        log = str(self.root / "log")
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", log, "-w", "start")
        psql = (_pg_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-qc")
        self._run(*psql, f"CREATE DATABASE {self.database}")
        self._run(*psql[:-1], "-d", self.database, "-qc", "CREATE EXTENSION pg_stat_statements")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """A redis-server without persistence on a free port; its database 9 is the benchmark's."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="zipline-bench-redis-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The benchmark's database on it (db 9, as on the shared Redis: never db 0)."""
        return f"redis://127.0.0.1:{self.port}/9"

    @property
    def pid(self) -> int:
        """The redis-server process."""
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> PrivateRedis:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            [*argv, "--dir", str(self.root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    self.__exit__(None, None, None)
                    raise RuntimeError("the benchmark's redis-server did not start within 10 s") from None
                time.sleep(0.02)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)
