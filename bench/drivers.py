"""Registry of the benchmarked rows: which driver class, in which interpreter (standard library only)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.common import BENCH_DIR, ROOT


@dataclass(frozen=True)
class Venv:
    """A Python environment a driver runs in; ``requirements`` None means it is not managed here."""

    name: str
    path: Path
    requirements: Path | None

    @property
    def python(self) -> Path:
        """The environment's interpreter."""
        return self.path / "bin" / "python"


PEERS_VENV = Venv("peers", BENCH_DIR / ".peers-venv", BENCH_DIR / "requirements-peers.txt")
# arq 0.28 requires redis<6 while celery's kombu 5.7 requires redis>=6.4: arq gets its own venv.
ARQ_VENV = Venv("arq", BENCH_DIR / ".peers-venv-arq", BENCH_DIR / "requirements-peers-arq.txt")
PROJECT_VENV = Venv("project", ROOT / ".venv", None)


@dataclass(frozen=True)
class DriverSpec:
    """One row of the results table. Rows named ``zipline_*`` are ZipLine in another configuration:
    never the headline, never a peer."""

    name: str
    label: str
    module: str
    cls: str
    venv: Venv
    settings: str


DRIVERS: dict[str, DriverSpec] = {
    spec.name: spec
    for spec in (
        DriverSpec(
            "zipline",
            "ZipLine",
            "bench.zipline_adapter",
            "ZipLineDriver",
            PROJECT_VENV,
            "bench/zipline_adapter.py with ZipLine's defaults",
        ),
        DriverSpec(
            "zipline_quiet",
            "ZipLine (quiet)",
            "bench.zipline_adapter",
            "ZipLineQuietDriver",
            PROJECT_VENV,
            "bench/zipline_adapter.py with JQS_LOG_LEVEL=warning JQS_METRICS_ENABLED=false",
        ),
        DriverSpec(
            "rq_default",
            "RQ (Worker, fork per job)",
            "bench.peers.rq",
            "RQDefaultDriver",
            PEERS_VENV,
            "rq worker-pool -n 2 -w rq.worker.Worker",
        ),
        DriverSpec(
            "rq_simple",
            "RQ (SimpleWorker)",
            "bench.peers.rq",
            "RQSimpleDriver",
            PEERS_VENV,
            "rq worker-pool -n 2 -w rq.worker.SimpleWorker",
        ),
        DriverSpec(
            "celery_prefork",
            "Celery (prefork)",
            "bench.peers.celery",
            "CeleryPreforkDriver",
            PEERS_VENV,
            "celery worker --pool prefork --concurrency 2",
        ),
        DriverSpec(
            "celery_threads",
            "Celery (threads)",
            "bench.peers.celery",
            "CeleryThreadsDriver",
            PEERS_VENV,
            "2 x celery worker --pool threads --concurrency 8",
        ),
        DriverSpec(
            "dramatiq",
            "Dramatiq",
            "bench.peers.dramatiq",
            "DramatiqDriver",
            PEERS_VENV,
            "dramatiq --processes 2 --threads 8",
        ),
        DriverSpec(
            "huey_threads",
            "Huey (threads)",
            "bench.peers.huey",
            "HueyThreadsDriver",
            PEERS_VENV,
            "huey_consumer -w 16 -k thread",
        ),
        DriverSpec(
            "huey_processes",
            "Huey (processes)",
            "bench.peers.huey",
            "HueyProcessesDriver",
            PEERS_VENV,
            "huey_consumer -w 2 -k process",
        ),
        DriverSpec(
            "arq",
            "arq",
            "bench.peers.arq",
            "ArqDriver",
            ARQ_VENV,
            "2 x arq worker (max_jobs=10, poll_delay=0.5s)",
        ),
    )
}

VENVS = (PEERS_VENV, ARQ_VENV)
