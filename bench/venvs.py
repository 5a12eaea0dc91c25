"""Create the peers' virtualenvs and install their pinned requirements (standard library only)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from bench.drivers import Venv

STAMP = ".bench-requirements.sha256"


def _digest(requirements: Path) -> str:
    return hashlib.sha256(requirements.read_bytes()).hexdigest()


def ensure(venv: Venv, log_dir: Path) -> None:
    """Make ``venv`` exist with exactly its requirements file installed; skip if already done."""
    if venv.requirements is None:
        return
    stamp = venv.path / STAMP
    digest = _digest(venv.requirements)
    if venv.python.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"pip-{venv.name}.log"
    print(f"setting up {venv.path.name} from {venv.requirements.name} (log: {log}) ...", flush=True)
    steps = []
    if not venv.python.exists():
        steps.append([sys.executable, "-m", "venv", str(venv.path)])
    steps.append(
        [str(venv.python), "-m", "pip", "install", "--disable-pip-version-check", "-r", str(venv.requirements)]
    )
    with log.open("w") as out:
        for step in steps:
            if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, check=False).returncode != 0:
                tail = log.read_text().splitlines()[-15:]
                raise SystemExit(f"failed: {' '.join(step)}\n" + "\n".join(tail))
    stamp.write_text(digest + "\n")
