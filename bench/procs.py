"""Worker processes: start them in their own process groups, measure their RSS, kill their trees.

Everything here reads /proc (Linux only) and uses only the standard library.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType

from bench.common import ROOT

#: If set, every spawned process group id is appended to this file, so that the orchestrator can
#: kill leftovers even if the workload process itself was killed.
PGID_FILE_ENV = "BENCH_PGID_FILE"

_PAGE = os.sysconf("SC_PAGE_SIZE")


def spawn(argv: list[str], env: dict[str, str], log_path: Path | None) -> subprocess.Popen[bytes]:
    """Start ``argv`` from the repo root in a new session (so a new process group)."""
    full_env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    sink = open(log_path, "ab") if log_path else contextlib.nullcontext(subprocess.DEVNULL)
    with sink as log:
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=full_env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    pgid_file = os.environ.get(PGID_FILE_ENV)
    if pgid_file:
        with open(pgid_file, "a") as fh:
            fh.write(f"{proc.pid}\n")
    return proc


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stat(pid: int) -> tuple[int, int] | None:
    """(ppid, pgrp) of a live process, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[2])


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def tree(roots: Iterable[int], pgids: Iterable[int] = ()) -> set[int]:
    """Live pids of ``roots``, of members of process groups ``pgids``, and of all their descendants."""
    info = {pid: st for pid in _all_pids() if (st := _stat(pid)) is not None}
    wanted_groups = set(pgids)
    found = {pid for pid in roots if pid in info} | {pid for pid, st in info.items() if st[1] in wanted_groups}
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in info.items():
        children.setdefault(ppid, []).append(pid)
    stack = list(found)
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def _signal(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def kill_trees(roots: Iterable[int], pgids: Iterable[int] = (), grace: float = 5.0) -> None:
    """SIGTERM the trees (and groups), wait up to ``grace`` seconds, then SIGKILL whatever is left.

    The tree is captured before signalling: children re-parented to init are still found.
    """
    roots, pgids = list(roots), list(pgids)
    pids = tree(roots, pgids or roots)
    if not pids:
        return
    _signal(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        alive = {pid for pid in pids if _stat(pid) is not None}
        if not alive:
            return
        time.sleep(0.05)
    _signal(pids | tree(roots, pgids or roots), signal.SIGKILL)


def kill_recorded_groups(pgid_file: Path) -> int:
    """Kill every process still alive in the groups listed in ``pgid_file``; return how many."""
    if not pgid_file.exists():
        return 0
    pgids = {int(line) for line in pgid_file.read_text().split() if line.strip()}
    pids = tree((), pgids)
    if pids:
        kill_trees((), pgids, grace=2.0)
    pgid_file.unlink(missing_ok=True)
    return len(pids)


def rss_bytes(pids: Iterable[int]) -> int:
    """Sum of the resident set sizes of ``pids`` (shared pages are counted once per process)."""
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            pass
    return total


def pss_bytes(pids: Iterable[int]) -> int:
    """Sum of the proportional set sizes of ``pids`` (shared pages split between their users)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
        except (OSError, IndexError, ValueError):
            pass
    return total


class RssSampler:
    """Background thread sampling the summed RSS (and PSS) of the worker trees; keeps the peaks."""

    def __init__(self, roots: Callable[[], list[int]], interval: float = 0.1) -> None:
        self.roots = roots
        self.interval = interval
        self.peak = 0
        self.peak_pss = 0
        self._stop = threading.Event()
        self._sampling = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> int:
        """Take one sample now and return it."""
        with self._sampling:
            pids = tree(self.roots())
            value = rss_bytes(pids)
            self.peak = max(self.peak, value)
            self.peak_pss = max(self.peak_pss, pss_bytes(pids))
        return value

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No sampling inside: a sample parses /proc in Python for milliseconds, holding the GIL
        of the process it runs in, and must not delay the calls being timed there."""
        with self._sampling:
            yield
        self.sample()

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        """Peak summed RSS in MiB."""
        return self.peak / 2**20

    @property
    def peak_pss_mb(self) -> float:
        """Peak summed PSS in MiB."""
        return self.peak_pss / 2**20
